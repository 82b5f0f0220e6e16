"""Redaction of personal data and secrets from free text, keeping the text's shape.

Error messages are free text and may hold e-mail addresses, client addresses, credentials
and card numbers. A :class:`Redactor` replaces each with a fixed placeholder before the
message is stored, mined, logged or published. Placeholders keep the message's shape, so
``"login failed for ann@example.com"`` and ``"login failed for bo@example.org"`` both become
``"login failed for <EMAIL>"`` and still fall into one error template.

=============  ==========================================================================
placeholder    what it replaces
=============  ==========================================================================
``<EMAIL>``    e-mail addresses
``<IP>``       IPv4 addresses (not version numbers such as ``v1.2.3.4`` or
               ``1.2.3.4-beta``) and IPv6 addresses (checked by :mod:`ipaddress`)
``<JWT>``      JSON Web Tokens (``eyJ...`` header, ``eyJ...`` payload, signature), also
               as the value of a key (``session=eyJ...``)
``<TOKEN>``    the credential after ``Bearer``/``Basic``; the value after ``password=``,
               ``secret:``, ``api_key=`` and the like; hex/base64 values of 16 characters
               or more after ``token=``, ``key=``, ``auth=``, ``session=``; AWS access key
               ids (``AKIA...``), GitHub, Slack and Stripe keys; the user:password of a URL.
               A credential after ``Bearer`` or a weak key must look random (digits,
               ``+/=``, or capitals inside), so that prose such as "Bearer authentication
               failed" or ``key=order_items`` is left alone.
``<CARD>``     payment card numbers: 13 to 19 digits, in one run or grouped by spaces or
               dashes as cards are printed (4-4-4-4, 4-6-5, ...), starting with 2 to 6
               (the card networks) and passing the Luhn check; not digits that are part
               of a longer token such as ``ord-4111111111111111``
``<IBAN>``     international bank account numbers: country code, check digits and 11 to 30
               letters or digits, in one run or in groups of four, passing the ISO 7064
               mod-97 check
``<PHONE>``    telephone numbers: international (``+`` and 8 to 15 digits, grouped by
               spaces, dots, dashes or a parenthesised area code), North American
               (``(415) 555-2671``, ``415-555-2671``) and national trunk-prefixed ones
               written in groups (``020 7946 0958``)
=============  ==========================================================================

:meth:`Redactor.scan` also counts what it replaced per class (:data:`PII_CLASSES`), finer
than the placeholders: a ``<TOKEN>`` is a ``bearer`` credential, an ``aws_key`` or another
``api_key``.

Built-in patterns are one alternation matched in a single pass, leaving out the alternatives
that a cheap test shows cannot match (no ``@``, no ``://``, fewer than three dots, ...); the
few candidates that need a check a regular expression cannot make (Luhn, IPv6 syntax, octets
up to 255, randomness of a credential) go through a small function. Extra patterns are
applied first, each in its own pass, so that deployment-specific formats win over the
built-in ones.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["PII_CLASSES", "PLACEHOLDERS", "Redactor", "Scan", "iban_valid", "luhn_valid"]

PLACEHOLDERS = ("<EMAIL>", "<IP>", "<JWT>", "<TOKEN>", "<CARD>", "<IBAN>", "<PHONE>")
"""Placeholders the built-in patterns produce."""
PII_CLASSES = ("email", "ip", "card", "iban", "phone", "jwt", "aws_key", "bearer", "api_key")
"""Classes :meth:`Redactor.scan` counts (a closed set: the worker uses them as metric labels)."""

# Key names whose value is a secret whatever it looks like.
_STRONG_KEYS = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|secret[_-]?key|api[_-]?key|apikey"
    r"|access[_-]?key(?:[_-]?id)?|private[_-]?key|credentials?"
)
# Key names that are often innocent (``key=order_id``): only long hex/base64 values count.
_WEAK_KEYS = (
    r"(?:access[_-]?|refresh[_-]?|id[_-]?|auth[_-]?|session[_-]?)?token|key|auth|session|sig"
)
_KEY_SEP = r"[\"']?\s*[:=]\s*"
_WEAK_SEP = r"[\"']?\s*[:=]\s*[\"']?"
_QUOTED_OR_BARE = r"\"[^\"]*\"|'[^']*'|[^\s\"',;&)}\]]+"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_VENDOR_PREFIXES = (
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xox",
    "k_live_",
    "k_test_",
)

# One alternative per kind, each a named group around any inner groups, so that
# ``match.lastgroup`` names the alternative that matched (or its value group). Order matters
# where two could start at the same position: the more specific comes first. Each comes with
# a cheap necessary condition on the text (and its lower-case form): alternatives that cannot
# match are left out of the pass, which is most of them for most messages. The IPv4 and card
# alternatives consume a digit before looking behind, which lets the scan skip non-digits fast.
_ALTERNATIVES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    (
        r"(?P<jwt>(?<![\w-])eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*)",
        lambda text, lower: "eyJ" in text,
    ),
    (
        r"(?P<auth>(?<![\w-])(?i:bearer|basic)\s+)(?P<auth_value>[\w.~+/=-]{8,})",
        lambda text, lower: "bearer" in lower or "basic" in lower,
    ),
    (
        rf"(?P<strong>(?<![A-Za-z0-9])(?i:{_STRONG_KEYS}){_KEY_SEP})"
        rf"(?!eyJ[\w-]{{5,}}\.eyJ)(?P<strong_value>{_QUOTED_OR_BARE})",
        lambda text, lower: (
            ("=" in text or ":" in text)
            and any(k in lower for k in ("pass", "pwd", "secret", "key", "credential"))
        ),
    ),
    (
        rf"(?P<weak>(?<![A-Za-z0-9])(?i:{_WEAK_KEYS}){_WEAK_SEP})(?!eyJ[\w-]{{5,}}\.eyJ)(?P<weak_value>[\w+/=-]{{16,}})",
        lambda text, lower: (
            ("=" in text or ":" in text)
            and any(k in lower for k in ("token", "key", "auth", "session", "sig"))
        ),
    ),
    (
        r"(?P<vendor>(?<![\w-])(?:(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,})(?![\w-]))",
        lambda text, lower: any(k in text for k in _VENDOR_PREFIXES),
    ),
    (
        # Country, check digits, then 11 to 30 letters or digits, maybe in groups of four.
        r"(?P<iban>(?<![\w-])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?![\w-]))",
        lambda text, lower: _IBAN_HINT.search(text) is not None,
    ),
    (
        r"(?P<url_user>(?<=://)[^\s/:@]+:[^\s/@]+(?=@))",
        lambda text, lower: "://" in text and "@" in text,
    ),
    (
        r"(?P<email>(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w))",
        lambda text, lower: "@" in text,
    ),
    (
        r"(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
        rf"(?:{_OCTET}(?:\.{_OCTET}){{3}}|[0-9A-Fa-f]{{1,4}})?(?:%[\w-]+)?(?![\w:]|\.\w))",
        # A valid IPv6 address has "::" or eight groups.
        lambda text, lower: "::" in text or text.count(":") >= 7,
    ),
    (
        # International (+CC ...), North American (415) 555-2671 / 415-555-2671, and national
        # numbers with a trunk 0 written in groups (020 7946 0958); validated by _phone.
        r"(?P<phone>(?<![\w+.-])(?:\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,5}"
        r"|\(\d{3}\)[ ]?\d{3}[ .-]\d{4}|\d{3}(?P<phone_sep>[.-])\d{3}(?P=phone_sep)\d{4}"
        r"|0\d{1,4}(?:[ ]\d{2,4}){2,4})(?![\w.:-]?\d|[\w])(?!\.\d))",
        lambda text, lower: _PHONE_HINT.search(text) is not None,
    ),
    (
        r"(?P<ipv4>\d(?<![\w.-]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|[.-]\w))",
        lambda text, lower: text.count(".") >= 3,
    ),
    (
        # Cards are written as 4 digits and groups of 3 to 6 (4-4-4-4, 4-6-5) or in one run.
        r"(?P<card>\d(?<![\w.+-]\d)\d{3}(?:[ -]?\d{3,6}){1,4}(?!\w|[.-]\d))",
        lambda text, lower: True,
    ),
)
_SEPARATORS = re.compile(r"[ -]")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d\d", re.ASCII)
# Where a phone number could start: "+" and a digit, "(ddd)", ddd-ddd-d, or a trunk 0 group.
_PHONE_HINT = re.compile(r"\+\d|\(\d{3}\)|\d{3}[.-]\d{3}[.-]\d|(?<!\d)0\d{1,4} \d\d", re.ASCII)


@functools.cache
def _pattern(mask: int) -> re.Pattern[str]:
    """The alternation of the alternatives whose bit is set in ``mask``."""
    chosen = [regex for i, (regex, _) in enumerate(_ALTERNATIVES) if mask >> i & 1]
    return re.compile("|".join(chosen), re.ASCII)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum used by payment cards.

    Examples
    --------
    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    # Major industry identifiers 2 to 6 are the card networks; the rule keeps epoch
    # milliseconds (1...) and most numeric ids out without missing a real card.
    return 13 <= len(digits) <= 19 and "2" <= digits[0] <= "6" and luhn_valid(digits)


def _card(text: str) -> str:
    """Redact the longest run of digit groups in ``text`` that is a card number, if any.

    The candidate may have swallowed numbers written next to the card (``12 4111 ... 1111``),
    so runs of groups cut at a separator are tried too, longest first.
    """
    groups = _SEPARATORS.split(text)
    if len(groups) == 1:
        return "<CARD>" if _is_card(text) else text
    seps = [*_SEPARATORS.findall(text), ""]
    for size in range(len(groups), 0, -1):
        for start in range(len(groups) - size + 1):
            end = start + size
            if _is_card("".join(groups[start:end])):
                head = "".join(g + s for g, s in zip(groups[:start], seps[:start], strict=True))
                tail = "".join(s + g for s, g in zip(seps[end - 1 : -1], groups[end:], strict=True))
                return head + "<CARD>" + tail
    return text


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (spaces allowed) passes the ISO 13616 mod-97 check.

    >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    compact = iban.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _iban(text: str) -> str:
    return "<IBAN>" if iban_valid(text) else text


def _phone(text: str) -> str:
    digits = sum(c.isdigit() for c in text)
    if text[0] == "+":
        return "<PHONE>" if 8 <= digits <= 15 else text
    return "<PHONE>" if 10 <= digits <= 12 else text


def _ipv4(text: str) -> str:
    for part in text.split("."):
        # 256.1.1.1 and 01.2.3.4 are not addresses.
        if int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            return text
    return "<IP>"


def _ipv6(text: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        # Clock times (12:30:45), MAC addresses and the like look similar but are not IPs.
        return text
    return "<IP>"


def _looks_random(value: str) -> bool:
    """Whether a value looks like a credential rather than a word (``authentication``).

    Credentials are random: they carry digits, base64 symbols or capitals inside.
    """
    return any(c.isdigit() or c in "+/=" for c in value) or (
        any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    )


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "phone":
        return _phone(match[0])
    if kind == "iban":
        return _iban(match[0])
    if kind == "auth_value":
        value = match["auth_value"]
        if not _looks_random(value):
            return match[0]
        return match["auth"] + "<TOKEN>"
    if kind == "strong_value":
        value = match["strong_value"]
        quote = value[0] if value[0] in "\"'" else ""
        return match["strong"] + quote + "<TOKEN>" + quote
    if kind == "weak_value":
        value = match["weak_value"]
        if not _looks_random(value):
            return match[0]
        return match["weak"] + "<TOKEN>"
    if kind == "email":
        return "<EMAIL>"
    if kind == "ipv4":
        return _ipv4(match[0])
    if kind == "ipv6":
        return _ipv6(match[0])
    if kind == "card":
        return _card(match[0])
    if kind == "jwt":
        return "<JWT>"
    return "<TOKEN>"


class Redactor:
    """Replace personal data and secrets in text by placeholders.

    Parameters
    ----------
    extra_patterns
        ``(regex, placeholder)`` pairs for deployment-specific data (customer numbers,
        phone numbers, internal host names). They are applied before the built-in
        patterns, in the order given.

    Examples
    --------
    >>> r = Redactor()
    >>> r.redact("order for ann.lee@example.com from 10.0.0.7:443 failed")
    'order for <EMAIL> from <IP>:443 failed'
    >>> r.redact("client v1.2.3.4 and build 1.2.3 are versions, not addresses")
    'client v1.2.3.4 and build 1.2.3 are versions, not addresses'
    >>> r.redact("charge 4111 1111 1111 1111 failed; order 4111111111111112 is not a card")
    'charge <CARD> failed; order 4111111111111112 is not a card'
    >>> r.redact("login with password=hunter2 and Authorization: Bearer abc123def456")
    'login with password=<TOKEN> and Authorization: Bearer <TOKEN>'
    >>> Redactor([(r"\\bcust-\\d+", "<CUSTOMER>")]).redact("cust-0042 not found")
    '<CUSTOMER> not found'
    """

    def __init__(self, extra_patterns: Sequence[tuple[str, str]] = ()) -> None:
        self.extra_patterns = tuple((str(p), str(r)) for p, r in extra_patterns)
        # The placeholder is inserted literally: a backslash or group reference in it
        # must not be interpreted.
        self._extra: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = tuple(
            (re.compile(p), _constant(r)) for p, r in self.extra_patterns
        )

    def redact(self, text: str) -> str:
        """Return ``text`` with every match replaced by its placeholder."""
        for pattern, repl in self._extra:
            text = pattern.sub(repl, text)
        return _pattern(_mask(text)).sub(_replace, text)

    def scan(self, text: str) -> Scan:
        """Redact ``text`` and count what was replaced per class of :data:`PII_CLASSES`
        (extra patterns are counted under their placeholder).

        >>> s = Redactor().scan("call +44 20 7946 0958 or pay GB82 WEST 1234 5698 7654 32, "
        ...                     "key AKIAIOSFODNN7EXAMPLE, Authorization: Bearer abc123def456")
        >>> s.text
        'call <PHONE> or pay <IBAN>, key <TOKEN>, Authorization: Bearer <TOKEN>'
        >>> sorted(s.counts.items())
        [('aws_key', 1), ('bearer', 1), ('iban', 1), ('phone', 1)]
        """
        counts: dict[str, int] = {}
        for pattern, repl in self._extra:
            text, n = pattern.subn(repl, text)
            if n:
                counts[repl(None)] = counts.get(repl(None), 0) + n  # type: ignore[arg-type]

        def counted(match: re.Match[str]) -> str:
            out = _replace(match)
            if out != match[0]:
                cls = _class_of(match, out)
                counts[cls] = counts.get(cls, 0) + 1
            return out

        return Scan(_pattern(_mask(text)).sub(counted, text), counts)


@dataclass(frozen=True, slots=True)
class Scan:
    """A redacted text and how many of each class were replaced in it."""

    text: str
    counts: dict[str, int]


def _mask(text: str) -> int:
    """The alternatives that may match ``text``, as a bit mask."""
    lower = text.lower()
    mask = 0
    for i, (_, possible) in enumerate(_ALTERNATIVES):
        if possible(text, lower):
            mask |= 1 << i
    return mask


_PLACEHOLDER_CLASSES = {
    "<EMAIL>": "email",
    "<IP>": "ip",
    "<JWT>": "jwt",
    "<CARD>": "card",
    "<IBAN>": "iban",
    "<PHONE>": "phone",
}


def _class_of(match: re.Match[str], out: str) -> str:
    for placeholder, cls in _PLACEHOLDER_CLASSES.items():
        if placeholder in out:
            return cls
    if match.lastgroup == "auth_value":
        return "bearer"
    if match.lastgroup == "vendor" and match[0][:4] in ("AKIA", "ASIA"):
        return "aws_key"
    # An AWS secret key is named after AWS just before the key (aws_secret_access_key=).
    if match.lastgroup == "strong_value" and "aws" in match.string[: match.start()][-12:].lower():
        return "aws_key"
    return "api_key"


def _constant(placeholder: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: placeholder

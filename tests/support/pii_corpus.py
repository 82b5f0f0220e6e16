"""A held-back corpus of synthetic free text for the PII classifier, generated from a seed.

Messages look like what reaches the worker: error messages, stack traces and user feedback.
Each message comes with how many values of each class it holds (positives), and a third of
the messages are hard negatives only: numbers and strings that look like personal data and
are not (Luhn or mod-97 failures, versions, timestamps, ids, hashes, prose about tokens).
The templates and generators here are not the classifier's doctests or unit cases: they
were written apart from them, to measure it rather than to tune it.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Sample", "corpus", "score"]


@dataclass(frozen=True)
class Sample:
    text: str
    expected: dict[str, int]
    values: tuple[str, ...]
    """The personal values in ``text``: none may survive redaction."""


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16),
                                 ("2221", 16), ("4", 13), ("35", 16)])  # fmt: skip
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = body + _luhn_digit(body)
    style = rng.random()
    if style < 0.4 or length == 13:  # 13-digit cards are printed in one run
        return number
    sep = rng.choice([" ", "-"])
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def _not_luhn(rng: random.Random) -> str:
    while True:
        digits = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(15))
        if _luhn_digit(digits[:-1]) != digits[-1]:
            return digits


_IBAN_FORMATS = {  # country: (length of the BBAN, alphabet of each BBAN position)
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20,
    "IT": "a" + "n" * 10 + "c" * 12,
    "BE": "n" * 12,
    "CH": "n" * 5 + "c" * 12,
}


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def _bban(rng: random.Random, shape: str) -> str:
    pick = {
        "n": string.digits,
        "a": string.ascii_uppercase,
        "c": string.ascii_uppercase + string.digits,
    }
    return "".join(rng.choice(pick[c]) for c in shape)


def _group(iban: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _iban(rng: random.Random) -> str:
    country = rng.choice(sorted(_IBAN_FORMATS))
    bban = _bban(rng, _IBAN_FORMATS[country])
    return _group(country + _iban_check(country, bban) + bban, rng)


def _bad_iban(rng: random.Random) -> str:
    country = rng.choice(sorted(_IBAN_FORMATS))
    bban = _bban(rng, _IBAN_FORMATS[country])
    check = int(_iban_check(country, bban))
    return _group(f"{country}{(check + rng.randint(1, 50)) % 97 + 2:02d}{bban}", rng)


def _phone(rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    area = str(rng.randint(201, 989))
    return rng.choice([
        lambda: f"+1 ({area}) {rng.randint(200, 999)}-{d(4)}",
        lambda: f"+1-{area}-{rng.randint(200, 999)}-{d(4)}",
        lambda: f"({area}) {rng.randint(200, 999)}-{d(4)}",
        lambda: f"{area}-{rng.randint(200, 999)}-{d(4)}",
        lambda: f"{area}.{rng.randint(200, 999)}.{d(4)}",
        lambda: f"+44 {rng.choice(['20', '161', '131'])} {d(4)} {d(4)}",
        lambda: f"+44 7{d(3)} {d(6)}",
        lambda: f"+33 {rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"+49 {rng.randint(30, 89)} {d(8)}",
        lambda: f"+49{rng.randint(151, 179)}{d(8)}",
        lambda: f"+91 {d(5)} {d(5)}",
        lambda: f"0{rng.randint(20, 29)} {d(4)} {d(4)}",
        lambda: f"07{d(3)} {d(3)} {d(3)}",
    ])()  # fmt: skip


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        # Credentials are random: digits, and capitals when the alphabet has them.
        upper = not any(c.isupper() for c in alphabet) or any(c.isupper() for c in value[1:])
        if any(c.isdigit() for c in value) and upper:
            return value


def _jwt(rng: random.Random) -> str:
    header = _b64url(b'{"alg":"' + rng.choice([b"HS256", b"RS256", b"ES256"]) + b'","typ":"JWT"}')
    payload = _b64url(b'{"sub":"%d","iat":%d}' % (rng.randint(1, 10**6), rng.randint(1, 2**31)))
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


def _aws(rng: random.Random) -> tuple[str, str]:
    """(the text, the secret value in it)."""
    if rng.random() < 0.7:
        key = rng.choice(["AKIA", "ASIA"]) + _rand(rng, 16, string.ascii_uppercase + string.digits)
        return key, key
    secret = _rand(rng, 40, string.ascii_letters + string.digits + "/+")
    return f"aws_secret_access_key={secret}", secret


def _api_key(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(6)
    if kind == 0:
        value = _rand(rng, 32, "0123456789abcdef")
        return f"api_key={value}", value
    if kind == 1:
        value = _rand(rng, 12, string.ascii_letters + string.digits + "!#%")
        return f"password={value}", value
    if kind == 2:
        value = "ghp_" + _rand(rng, 36)
        return value, value
    if kind == 3:
        value = "sk_live_" + _rand(rng, 24)
        return value, value
    if kind == 4:
        value = _rand(rng, 40, string.ascii_letters + string.digits + "_-")
        return f"token={value}", value
    value = _rand(rng, 20)
    return f'"client_secret": "{value}"', value


def _email(rng: random.Random) -> str:
    first = rng.choice(["ann", "bo", "chen.li", "d.okafor", "eva_m", "f.garcia", "li-na", "omar"])
    tag = rng.choice(["", "", "+orders", f"{rng.randint(1, 99)}"])
    domain = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "shop.test"])
    return f"{first}{tag}@{domain}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(rng.randint(2, 4))]
    return "2001:db8:" + ":".join(groups[:-1]) + "::" + groups[-1]


def _bearer(rng: random.Random) -> tuple[str, str]:
    value = _rand(rng, rng.randint(20, 44), string.ascii_letters + string.digits + "._-")
    return f"Authorization: Bearer {value}", value


# Each template takes a generator of each class and returns (text, expected, values).
Gen = Callable[[random.Random], tuple[str, dict[str, int], tuple[str, ...]]]


def _one(cls: str, make: Callable[[random.Random], str], templates: list[str]) -> Gen:
    def gen(rng: random.Random) -> tuple[str, dict[str, int], tuple[str, ...]]:
        value = make(rng)
        return rng.choice(templates).format(v=value, n=rng.randint(2, 9999)), {cls: 1}, (value,)

    return gen


def _pair(cls: str, make: Callable[[random.Random], tuple[str, str]], templates: list[str]) -> Gen:
    def gen(rng: random.Random) -> tuple[str, dict[str, int], tuple[str, ...]]:
        text, secret = make(rng)
        return rng.choice(templates).format(v=text, n=rng.randint(2, 9999)), {cls: 1}, (secret,)

    return gen


_POSITIVES: dict[str, Gen] = {
    "email": _one(
        "email",
        _email,
        [
            "user {v} not found (request {n})",
            "password reset mail to <{v}> bounced: 550 mailbox unavailable",
            "Please stop emailing me at {v}, I asked twice!",
            'ValueError: duplicate key (email)=({v}) violates "users_email_key"',
        ],
    ),
    "ip": _one(
        "ip",
        _ip,
        [
            "connection reset by peer [{v}]:{n}",
            "rate limit exceeded for client {v} after {n} requests",
            "upstream {v} timed out after 30000 ms",
            "  at Socket.connect (net.js:{n}) remote={v}",
        ],
    ),
    "card": _one(
        "card",
        _card,
        [
            "charge declined for card {v}: insufficient funds",
            "PaymentError: card {v} expired (attempt {n})",
            "I was charged twice on my card {v}, refund please",
            "tokenize failed pan={v} merchant=m-{n}",
        ],
    ),
    "iban": _one(
        "iban",
        _iban,
        [
            "SEPA transfer to {v} rejected: account closed",
            "payout {n} failed, beneficiary IBAN {v}",
            "Refund it to my account {v} thanks",
            "mandate mismatch iban={v} ref={n}",
        ],
    ),
    "phone": _one(
        "phone",
        _phone,
        [
            "SMS to {v} failed: carrier rejected",
            "call me back on {v} please, order {n}",
            "OTP delivery to {v} timed out after {n} ms",
            "TwilioError 21211: invalid 'To' number {v}",
        ],
    ),
    "jwt": _one(
        "jwt",
        _jwt,
        [
            "invalid signature for token {v}",
            "JWT expired: {v}",
            "cookie session={v}; path=/",
            "401 Unauthorized id_token {v}",
        ],
    ),
    "aws_key": _pair(
        "aws_key",
        _aws,
        [
            "AccessDenied: {v} is not authorized to perform s3:PutObject",
            "boto3 using credentials {v} from env",
            "InvalidClientTokenId: the security token {v} is invalid",
        ],
    ),
    "bearer": _pair(
        "bearer",
        _bearer,
        [
            "request failed: {v} (401)",
            "curl -H '{v}' https://api.example.com/v1/orders/{n}",
            "headers: Accept: */*, {v}, X-Request-Id: r{n}",
        ],
    ),
    "api_key": _pair(
        "api_key",
        _api_key,
        [
            "GET /v2/search?q=shoes&{v} returned 403",
            "config loaded: {v} region=eu-west-1",
            "rejected credential {v} (attempt {n})",
        ],
    ),
}

_NEGATIVES: list[Callable[[random.Random], str]] = [
    lambda r: f"order {_not_luhn(r)} not found",
    lambda r: f"idempotency key ord-{_card(r).replace(' ', '').replace('-', '')} reused",
    lambda r: f"event at epoch {r.randint(1_600_000_000_000, 1_800_000_000_000)} ms skipped",
    lambda r: f"trace {r.randbytes(16).hex()} span {r.randbytes(8).hex()}",
    lambda r: (
        f"deploy v{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}.{r.randint(0, 999)} "
        f"rolled back"
    ),
    lambda r: (
        f"at {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} "
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        f".{r.randint(0, 999):03d}Z"
        f" job {r.randint(1, 999)} took {r.randint(1, 99999)} ms"
    ),
    lambda r: f"beneficiary check failed for {_bad_iban(r)}",
    lambda r: (
        f"SKU {''.join(r.choice(string.ascii_uppercase) for _ in range(2))}"
        f"{r.randint(10, 99)}{_rand(r, 10, string.ascii_uppercase + string.digits)} out of stock"
    ),
    lambda r: "Bearer authentication failed: token expired",
    lambda r: f"cache key=order_items:{r.randint(1, 10**6)} evicted",
    lambda r: f"missing api_key header on /v1/items/{r.randint(1, 10**5)}",
    lambda r: "git@github not reachable; user@localhost has no mailbox",
    lambda r: (
        f"256.{r.randint(0, 255)}.{r.randint(0, 255)}.1 is not an address; "
        f"build 1.2.{r.randint(0, 9)}"
    ),
    lambda r: f"mac {':'.join(f'{r.randint(0, 255):02x}' for _ in range(6))} link down",
    lambda r: (
        f"HTTP/1.1 {r.choice([500, 502, 503, 504])} after {r.randint(1, 60)}s, retry "
        f"{r.randint(1, 5)}/5"
    ),
    lambda r: f"amount {r.randint(1, 99)},{r.randint(100, 999)}.{r.randint(10, 99)} EUR over limit",
    lambda r: f"ext. {r.randint(100, 9999)} busy; queue {r.randint(10, 99)} {r.randint(10, 99)}",
    lambda r: (
        f"pid {r.randint(100, 99999)} exited with 137 (OOMKilled) at 0x{r.randbytes(6).hex()}"
    ),
    lambda r: (
        f'  File "/srv/app/handlers/{r.choice(["pay", "cart", "auth"])}.py", line '
        f"{r.randint(1, 2000)}, in {r.choice(['charge', 'checkout', 'login'])}"
    ),
    lambda r: (
        f"uuid {r.randbytes(4).hex()}-{r.randbytes(2).hex()}-{r.randbytes(2).hex()}-"
        f"{r.randbytes(2).hex()}-{r.randbytes(6).hex()} duplicated"
    ),
    lambda r: f"latency p99 {r.randint(100, 999)} ms vs SLO 300 ms; {r.randint(1, 99)}% errors",
    lambda r: (
        f"kafka offset {r.randint(10**6, 10**9)} partition {r.randint(0, 31)} "
        f"lag {r.randint(0, 10**5)}"
    ),
]


def corpus(
    seed: int = 20261202, positives_per_class: int = 200, negatives: int = 1500
) -> list[Sample]:
    """The corpus: ``positives_per_class`` messages holding each class (some holding two
    classes at once), and ``negatives`` messages holding none."""
    rng = random.Random(seed)
    samples = []
    classes = sorted(_POSITIVES)
    for cls in classes:
        for i in range(positives_per_class):
            text, expected, values = _POSITIVES[cls](rng)
            if i % 4 == 0:  # a second class and a hard negative in the same message
                other = rng.choice([c for c in classes if c != cls])
                more, more_expected, more_values = _POSITIVES[other](rng)
                text = f"{text}; {rng.choice(_NEGATIVES)(rng)}; {more}"
                expected = {
                    **expected,
                    **{k: expected.get(k, 0) + v for k, v in more_expected.items()},
                }
                values += more_values
            samples.append(Sample(text, expected, values))
    for _ in range(negatives):
        samples.append(Sample(rng.choice(_NEGATIVES)(rng), {}, ()))
    rng.shuffle(samples)
    return samples


def score(samples: list[Sample], scan: Callable[[str], tuple[str, dict[str, int]]]) -> dict:
    """Precision and recall per class of ``scan`` (text -> (redacted, counts per class)).

    Per message and class, found and expected counts are matched: the excess found are false
    positives, the excess expected false negatives. A personal value still in the redacted
    text is a false negative whatever the counts say (and ``leaks`` counts it).
    """
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    leaks = 0
    for sample in samples:
        redacted, counts = scan(sample.text)
        leaked = [v for v in sample.values if v in redacted]
        leaks += len(leaked)
        for cls in set(counts) | set(sample.expected):
            found, expected = counts.get(cls, 0), sample.expected.get(cls, 0)
            tp[cls] = tp.get(cls, 0) + min(found, expected)
            fp[cls] = fp.get(cls, 0) + max(0, found - expected)
            fn[cls] = fn.get(cls, 0) + max(0, expected - found)
        if leaked:  # each leak is a miss of the message's first class
            cls = next(iter(sample.expected))
            fn[cls] = fn.get(cls, 0) + len(leaked)
    figures = {}
    for cls in sorted(set(tp) | set(fp) | set(fn)):
        t, p, n = tp.get(cls, 0), fp.get(cls, 0), fn.get(cls, 0)
        figures[cls] = {
            "tp": t,
            "fp": p,
            "fn": n,
            "precision": round(t / (t + p), 4) if t + p else 1.0,
            "recall": round(t / (t + n), 4) if t + n else 1.0,
        }
    return {"samples": len(samples), "leaks": leaks, "classes": figures}

"""Reading the TOML configuration files: one error type, typed getters, line numbers.

Every configuration contract (:mod:`~schemas.config.regions`, :mod:`~schemas.config.actuation`,
:mod:`~schemas.config.prices`, :mod:`~schemas.config.budgets`) is parsed the same way:

1. :func:`load` reads the file (a missing or unreadable one is an error naming it);
2. :func:`parse` decodes the TOML and hands the document, as a :class:`Value`, to the
   contract's build function;
3. the build function reads each field with a typed getter of :class:`Value` (``number``,
   ``string``, ``one_of``, ``boolean``, ``array``, ``table``), which knows the field's key
   path and raises :class:`ConfigError` naming it;
4. :func:`parse` finds the line of that key path in the text and re-raises the error as
   the contract's own subclass, e.g.
   ``regions.toml:12: regions.eu-west.headroom: must be in [0, 1], got 1.5``.

Tables accept only the keys they list, so that a typo cannot silently switch a setting
off. TOML syntax errors get the same ``file:line: field:`` prefix.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "KeyPath",
    "Table",
    "Value",
    "field_name",
    "from_mapping",
    "load",
    "parse",
    "type_name",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "streams" / "config"
"""Where the bundled default configuration files are."""

KeyPath = tuple[str | int, ...]
"""Where a value is in a document: table keys, and indices of array items."""

T = TypeVar("T")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def field_name(path: KeyPath) -> str:
    """A key path as it is written in TOML, with array indices in brackets.

    >>> field_name(("rate_limit", "resources", "route53:*", "window_s"))
    'rate_limit.resources."route53:*".window_s'
    >>> field_name(("failover", "route53", "records", 1, "weights"))
    'failover.route53.records[1].weights'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            out += f".{text}" if out else text
    return out


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid: ``source:line: field: problem``.

    Each contract raises its own subclass; the parts stay available as attributes.

    Parameters
    ----------
    problem
        What is wrong, e.g. ``must be > 0, got 0``.
    source
        The file (or other origin) of the document; empty when unknown.
    line
        The line of the field in ``source``, when it could be found.
    path
        The key path of the field; ``()`` for the file as a whole.

    Examples
    --------
    >>> str(ConfigError("must be > 0, got 0", source="r.toml", line=4, path=("regions", "x")))
    'r.toml:4: regions.x: must be > 0, got 0'
    >>> str(ConfigError("no such region configuration file", source="r.toml"))
    'r.toml: no such region configuration file'
    """

    def __init__(
        self, problem: str, *, source: str = "", line: int | None = None, path: KeyPath = ()
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.path = path
        parts = [f"{source}:{line}" if source and line is not None else source]
        parts += [field_name(path), problem]
        super().__init__(": ".join(p for p in parts if p))


def type_name(value: Any) -> str:
    """What a decoded TOML value is, for messages: ``the string 'x'``, ``an array``...

    >>> type_name("cheap"), type_name(1.5), type_name(True), type_name([])
    ("the string 'cheap'", 'the number 1.5', 'a boolean', 'an array')
    """
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


@dataclass(frozen=True, slots=True)
class Value:
    """A decoded TOML value and its key path: the typed getters check it or name the field.

    Examples
    --------
    >>> Value(0.35, ("regions", "eu-west", "headroom")).number(0, 1)
    0.35
    >>> Value(1.5, ("retry", "max_attempts")).number(1, 20, integer=True)
    Traceback (most recent call last):
    ...
    schemas.config.toml.ConfigError: retry.max_attempts: must be an integer, got the number 1.5
    """

    raw: Any
    path: KeyPath = ()

    def invalid(self, problem: str) -> ConfigError:
        """The error of this field: raise it for a check the getters do not make."""
        return ConfigError(problem, path=self.path)

    def number(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        integer: bool = False,
        low_open: bool = False,
        high_open: bool = False,
    ) -> Any:
        """A finite number (an ``int`` if ``integer``) within the bounds given.

        Integers stay ``int``; a float field given as an integer is returned as given, so
        callers convert with ``float()`` where the type matters.
        """
        kinds = (int,) if integer else (int, float)
        if isinstance(self.raw, bool) or not isinstance(self.raw, kinds):
            noun = "an integer" if integer else "a number"
            raise self.invalid(f"must be {noun}, got {type_name(self.raw)}")
        if not math.isfinite(self.raw):
            raise self.invalid(f"must be finite, got {self.raw!r}")
        if (
            (low is not None and (self.raw <= low if low_open else self.raw < low))
            or (high is not None and (self.raw >= high if high_open else self.raw > high))
        ):  # fmt: skip
            raise self.invalid(
                f"must be {_bounds(low, high, low_open, high_open)}, got {self.raw!r}"
            )
        return self.raw

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "a name") -> str:
        """A non-empty string, matching ``pattern`` if given (``what`` it then must be)."""
        if pattern is None and (not isinstance(self.raw, str) or not self.raw):
            raise self.invalid(f"must be a non-empty string, got {type_name(self.raw)}")
        if pattern is not None and not (isinstance(self.raw, str) and pattern.match(self.raw)):
            raise self.invalid(f"must be {what} ({pattern.pattern}), got {type_name(self.raw)}")
        return self.raw

    def one_of(self, choices: Sequence[str]) -> str:
        """One of the strings ``choices``."""
        if self.raw not in choices:
            raise self.invalid(f"must be one of {', '.join(choices)}, got {type_name(self.raw)}")
        return self.raw

    def boolean(self) -> bool:
        """``true`` or ``false``."""
        if not isinstance(self.raw, bool):
            raise self.invalid(f"must be true or false, got {type_name(self.raw)}")
        return self.raw

    def array(self, of: str = "values", *, non_empty: bool = False) -> list[Value]:
        """The items of an array (``of`` says what they are, for the message)."""
        if not isinstance(self.raw, list) or (non_empty and not self.raw):
            size = "a non-empty" if non_empty else "an"
            raise self.invalid(f"must be {size} array of {of}, got {type_name(self.raw)}")
        return [Value(item, (*self.path, i)) for i, item in enumerate(self.raw)]

    def table(self, allowed: Sequence[str] | None = None, of: str = "") -> Table:
        """A table; with ``allowed``, one holding only those keys (the first other is named).

        ``of`` says what its entries are, for the message (``a table of regions``).
        """
        if not isinstance(self.raw, Mapping):
            noun = f"a table of {of}" if of else "a table"
            raise self.invalid(f"must be {noun}, got {type_name(self.raw)}")
        if allowed is not None:
            for key in self.raw:
                if key not in allowed:
                    raise ConfigError(
                        f"unknown key (allowed: {', '.join(allowed)})", path=(*self.path, key)
                    )
        return Table(self.raw, self.path)


@dataclass(frozen=True, slots=True)
class Table:
    """A TOML table whose entries are handed out as :class:`Value` with their key paths.

    Examples
    --------
    >>> table = Value({"cost": 0}, ("regions", "eu-west")).table(("cost", "headroom"))
    >>> table.get("headroom", 0.5).number(0, 1)
    0.5
    >>> table.required("cost").number(0, low_open=True)
    Traceback (most recent call last):
    ...
    schemas.config.toml.ConfigError: regions.eu-west.cost: must be > 0, got 0
    """

    raw: Mapping[str, Any]
    path: KeyPath = ()

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def __len__(self) -> int:
        return len(self.raw)

    def items(
        self, pattern: re.Pattern[str] | None = None, what: str = "a name"
    ) -> Iterator[tuple[str, Value]]:
        """Each key and its value, in the order of the file; keys must match ``pattern``.

        ``what`` says what a key must be, for the message.
        """
        for key, raw in self.raw.items():
            value = Value(raw, (*self.path, key))
            if pattern is not None and not pattern.match(key):
                raise value.invalid(f"{key!r} is not {what} ({pattern.pattern})")
            yield key, value

    def required(self, key: str, problem: str = "is required") -> Value:
        """The value of ``key``; its absence is an error (``problem``) naming it."""
        if key not in self.raw:
            raise ConfigError(problem, path=(*self.path, key))
        return Value(self.raw[key], (*self.path, key))

    def get(self, key: str, default: Any) -> Value:
        """The value of ``key``, or ``default`` (checked by the getter just the same)."""
        return Value(self.raw.get(key, default), (*self.path, key))


# ------------------------------------------------------------------- lines of a TOML source
_KEY_TOKEN = r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+'
_KEYS = rf"(?:{_KEY_TOKEN})(?:\s*\.\s*(?:{_KEY_TOKEN}))*"
_DOTTED_KEY = re.compile(rf"^\s*({_KEYS})\s*=")
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_KEYS})\s*\]")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEYS})\s*=")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_AT_END = " (at end of document)"


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(t.strip("\"'") for t in re.findall(_KEY_TOKEN, text))


def _key_lines(text: str) -> tuple[dict[KeyPath, int], list[KeyPath]]:
    """Map each key path to the line defining it; also each line's enclosing table.

    A best-effort scan (tomllib reports no positions for valid documents): table headers,
    arrays of tables (``[[a.b]]``, numbered as tomllib numbers them), ``key = value`` lines
    (dotted keys included) and the keys of one-line inline tables.
    """
    lines: dict[KeyPath, int] = {}
    tables: list[KeyPath] = []
    arrays: dict[KeyPath, int] = {}  # array of tables -> index of its last table so far
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            keys = _split_key(header.group(2))
            table = ()
            for i, key in enumerate(keys):
                table = (*table, key)
                if header.group(1) == "[[" and i == len(keys) - 1:
                    arrays[table] = arrays.get(table, -1) + 1
                # A header defines its parent tables too: [latency_ms.us-east] is latency_ms.
                lines.setdefault(table, number)
                if table in arrays:
                    table = (*table, arrays[table])
                    lines.setdefault(table, number)
        else:
            key = _DOTTED_KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                lines.setdefault(path, number)
                for inline in _INLINE_KEY.finditer(line[key.end() :]):
                    lines.setdefault((*path, *_split_key(inline.group(1))), number)
        tables.append(table)
    return lines, tables


def _line_of(text: str, path: KeyPath) -> int | None:
    """The line of ``path``, or else of the nearest enclosing key that has one."""
    lines, _ = _key_lines(text)
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _syntax_error(text: str, source: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib's error, with the field of its line when that line has a key."""
    message = str(exc)
    source_lines = text.splitlines()
    found = _TOML_POSITION.search(message)
    if found is not None:
        number = int(found.group(1))
        problem = f"invalid TOML: {_TOML_POSITION.sub('', message)} (column {found.group(2)})"
    elif message.endswith(_AT_END) and source_lines:
        number = len(source_lines)
        problem = f"invalid TOML: {message.removesuffix(_AT_END)} at the end of the file"
    else:
        return ConfigError(f"invalid TOML: {message}", source=source)
    line = source_lines[number - 1] if number <= len(source_lines) else ""
    _, tables = _key_lines(text)
    table = tables[number - 1] if number <= len(tables) else ()
    key = _DOTTED_KEY.match(line)
    if key:
        path = (*table, *_split_key(key.group(1)))
    else:
        # A header that failed to parse is not inside the table before it.
        path = () if line.lstrip().startswith("[") else table
    return ConfigError(problem, source=source, line=number, path=path)


def _as(error: type[ConfigError], exc: ConfigError, source: str, line: int | None) -> ConfigError:
    return error(exc.problem, source=source, line=line, path=exc.path)


def parse(
    text: str,
    build: Callable[[Value], T],
    *,
    source: str = "<string>",
    error: type[ConfigError] = ConfigError,
) -> T:
    """Decode the TOML document ``text`` and ``build`` the contract from its top table.

    Parameters
    ----------
    text
        The document.
    build
        Reads the fields from the whole document, a :class:`Value` whose getters check them.
    source
        The document's name in messages, e.g. the file path.
    error
        The contract's :class:`ConfigError` subclass, raised for the first error found.

    Examples
    --------
    >>> def build(doc):
    ...     return doc.table(("port",)).required("port").number(1, 65535, integer=True)
    >>> parse("port = 8080", build)
    8080
    >>> parse("# the port\\nport = 80800", build, source="web.toml")
    Traceback (most recent call last):
    ...
    schemas.config.toml.ConfigError: web.toml:2: port: must be in [1, 65535], got 80800
    >>> parse("[server]\\nport = \\n", build, source="web.toml")
    Traceback (most recent call last):
    ...
    schemas.config.toml.ConfigError: web.toml:2: server.port: invalid TOML: Invalid value \
(column 8)
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _syntax_error(text, source, exc)
        raise _as(error, found, source, found.line) from None
    try:
        return build(Value(raw))
    except ConfigError as exc:
        raise _as(error, exc, source, _line_of(text, exc.path)) from None


def from_mapping(
    raw: Mapping[str, Any],
    build: Callable[[Value], T],
    *,
    source: str = "",
    error: type[ConfigError] = ConfigError,
) -> T:
    """:func:`parse` for a document already decoded (no text, so messages have no line)."""
    try:
        return build(Value(raw))
    except ConfigError as exc:
        raise _as(error, exc, source, None) from None


def load(
    path: str | Path,
    build: Callable[[Value], T],
    *,
    error: type[ConfigError] = ConfigError,
    what: str = "configuration",
) -> T:
    """Read the file at ``path`` and :func:`parse` it; ``what`` names it in messages.

    >>> load("/nowhere/prices.toml", lambda doc: doc, what="price table")
    Traceback (most recent call last):
    ...
    schemas.config.toml.ConfigError: /nowhere/prices.toml: no such price table file
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"no such {what} file", source=str(path)) from None
    except UnicodeDecodeError:
        raise error("not UTF-8 text", source=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", source=str(path)) from None
    return parse(text, build, source=str(path), error=error)

"""Whether a plugin may serve: a static scan of its code, then its conformance suite.

``autopilot plugins check NAME`` and the worker, for each plugin it is bound to, call
:func:`admit`. For a plugin, in order:

1. its code, the source files of its package (:func:`plugin_sources`), is scanned by
   bandit (:mod:`streams.plugins.security_scan`) and read for the capabilities it uses
   (:mod:`streams.plugins.capabilities`); a refusing finding, or a capability it did not
   declare, refuses it before any of its code runs;
2. a detector or a forecaster then goes through the conformance suite of
   :mod:`models.plugins.checks` (canned series, sound forecasts, determinism, checkpoint
   round trip, memory per series, time per call). The other groups have no suite yet: the
   static scan is all they get.

The product's own entries skip the scan: their code is the product's, reviewed with it.
A plugin that fails is refused with one line saying why (the worker logs it, and the
built-in serves instead). Verdicts are cached for the life of the process, keyed by the
entry and the size and modification time of every file scanned, so a start-up admits each
plugin once and an edited plugin is judged again.

Examples
--------
>>> import itertools
>>> from models import registry
>>> one_us_per_reading = itertools.count(0, 1000).__next__  # judge the code, not the machine
>>> verdict = admit(registry.entry("detectors", "series"), clock=one_us_per_reading)
>>> verdict.ok, verdict.reason.startswith("admitted: built-in")
(True, True)
>>> [check.name for check in verdict.checks][:2]
['learns and scores', 'deterministic']
"""

from __future__ import annotations

import importlib.metadata
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import registry
from models.plugins.checks import SUITES, CheckResult, Clock, run_checks
from streams.plugins.capabilities import capability_uses
from streams.plugins.security_scan import SecurityScanError, refuses, scan

__all__ = ["AdmissionError", "Verdict", "admit", "plugin_sources"]

_PRODUCT_PACKAGES = frozenset({"models", "agents", "streams"})
_DISTRIBUTION = "paas-autopilot"


class AdmissionError(RuntimeError):
    """A plugin's code cannot be found, so it cannot be scanned."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a plugin is admitted.

    Attributes
    ----------
    ok
        Admitted.
    reason
        One line: why it was refused, or what it was admitted on.
    figures
        What the checks measured, merged (``us_per_call_median``, ``bytes_per_series``...).
    checks
        Each check, in the order run; those after a refusing static scan are not run.
    """

    ok: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: tuple[CheckResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for ``--json`` outputs."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "figures": self.figures,
            "checks": [check.to_dict() for check in self.checks],
        }


_verdicts: dict[tuple[Any, ...], Verdict] = {}


def _is_product(entry: registry.Entry) -> bool:
    # An Entry built by a plugin can say builtin=True: only the product's code is trusted.
    factory = getattr(entry.factory, "func", entry.factory)
    module = getattr(factory, "__module__", "") or ""
    return entry.builtin and module.split(".")[0] in _PRODUCT_PACKAGES


def plugin_sources(entry: registry.Entry) -> tuple[Path, list[Path]]:
    """The Python files of the plugin's package, and the directory they are named from.

    The package is that of the module defining ``entry.factory``: for an installed
    distribution, the whole top-level package it installed (a helper module next to the
    factory is part of the plugin); for a module found on the path
    (``AUTOPILOT_PLUGIN_MODULES``), the package holding it, or the module's file alone if
    it is a top-level module.

    Raises
    ------
    AdmissionError
        If the factory's module has no source file.
    """
    factory = getattr(entry.factory, "func", entry.factory)
    module_name = getattr(factory, "__module__", None) or ""
    module = sys.modules.get(module_name)
    if module is None or not getattr(module, "__file__", None):
        raise AdmissionError(
            f"cannot find the source of {entry.group}/{entry.name}: "
            f"its factory's module {module_name!r} is not a Python file"
        )
    file = Path(module.__file__).resolve()
    top = module_name.split(".")[0]
    top_module = sys.modules.get(top)
    installed = set(importlib.metadata.packages_distributions().get(top, ())) - {_DISTRIBUTION}
    if installed and getattr(top_module, "__file__", None) and hasattr(top_module, "__path__"):
        root = Path(top_module.__file__).resolve().parent
    elif "." in module_name or hasattr(module, "__path__"):
        root = file.parent
    else:
        return file.parent, [file]
    return root.parent, sorted(root.rglob("*.py"))


def _fingerprint(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = [(str(path), path.stat()) for path in files]
    return tuple((name, stat.st_mtime_ns, stat.st_size) for name, stat in stats)


def _security_check(files: list[Path], base: Path) -> CheckResult:
    name = "security scan (bandit)"
    try:
        findings = scan(files, base)
    except SecurityScanError as exc:
        return CheckResult(name, False, str(exc))
    refusing = [finding for finding in findings if refuses(finding)]
    figures = {"files": len(files), "findings": len(findings), "refusing": len(refusing)}
    if refusing:
        more = f" (and {len(refusing) - 1} more)" if len(refusing) > 1 else ""
        return CheckResult(name, False, f"{refusing[0]}{more}", figures)
    return CheckResult(name, True, figures=figures)


def _capabilities_check(entry: registry.Entry, files: list[Path], base: Path) -> CheckResult:
    name = "capabilities"
    try:
        uses = capability_uses(files, base)
    except (SyntaxError, UnicodeDecodeError) as exc:
        return CheckResult(name, False, f"cannot read its code: {type(exc).__name__}: {exc}")
    figures = {
        "declared": sorted(entry.capabilities),
        "used": sorted({use.capability for use in uses}),
    }
    undeclared = [use for use in uses if use.capability not in entry.capabilities]
    if undeclared:
        use = undeclared[0]
        if use.capability == "unknown":
            why = f"{use.what} at {use.path}:{use.line}: what it needs cannot be told"
        else:
            why = f"{use.what} at {use.path}:{use.line} but does not declare {use.capability!r}"
        return CheckResult(name, False, why, figures)
    return CheckResult(name, True, figures=figures)


def _verdict(entry: registry.Entry, trusted: bool, results: list[CheckResult]) -> Verdict:
    figures: dict[str, Any] = {}
    for result in results:
        figures.update(result.figures)
    failed = next((result for result in results if not result.ok), None)
    if failed is not None:
        return Verdict(False, f"{failed.name}: {failed.reason}", figures, tuple(results))
    said = ["built-in"] if trusted else []
    said.append(f"{len(results)} checks passed")
    if entry.group not in SUITES:
        said.append(f"no conformance suite for {entry.group} yet")
    if "us_per_call_median" in figures:
        said.append(f"{figures['us_per_call_median']:,.1f} µs per call")
    if "bytes_per_series" in figures:
        said.append(f"{figures['bytes_per_series']:,d} bytes per series")
    return Verdict(True, "admitted: " + ", ".join(said), figures, tuple(results))


def admit(entry: registry.Entry, *, clock: Clock = time.perf_counter_ns) -> Verdict:
    """Scan and check ``entry``; never raises for what a plugin does.

    ``clock`` times the calls of the time-per-call check (tests pass a fake one).
    """
    try:
        return _admit(entry, clock)
    except Exception as exc:  # what a plugin's objects do when looked at cannot be foreseen
        return Verdict(False, f"admission: {type(exc).__name__}: {' '.join(str(exc).split())}")


def _admit(entry: registry.Entry, clock: Clock) -> Verdict:
    trusted = _is_product(entry)
    base, files = Path(), []
    if not trusted:
        try:
            base, files = plugin_sources(entry)
            fingerprint = _fingerprint(files)
        except (AdmissionError, OSError) as exc:
            return Verdict(False, f"source: {exc}")
    else:
        fingerprint = ()
    key = (entry, clock, fingerprint)
    try:
        cached = _verdicts.get(key)
    except TypeError:  # an unhashable factory (a callable instance): judged every time
        key, cached = None, None
    if cached is not None:
        return cached
    results = []
    if not trusted:
        results += [_security_check(files, base), _capabilities_check(entry, files, base)]
    # A plugin refused on its code is not run.
    if entry.group in SUITES and all(result.ok for result in results):
        results += run_checks(entry, clock=clock)
    verdict = _verdict(entry, trusted, results)
    if key is not None:
        _verdicts[key] = verdict
    return verdict

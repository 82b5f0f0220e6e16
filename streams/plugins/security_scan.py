"""A static security scan of a plugin's code with PyCQA's ``bandit``.

Bandit runs as ``python -m bandit -f json -q`` in a child process: its command line and
JSON report are its documented interface (its Python API is not), and its logging and
plugin loading stay out of the worker.

Which findings refuse a plugin: HIGH severity at any confidence (``shell=True`` with a
built command, ``exec``, a disabled TLS check...: one is enough to run arbitrary code or
open the worker), and MEDIUM severity with HIGH confidence (``eval``, unpickling,
``yaml.load``: dangerous, and bandit is sure of them). The rest are noise for numerical
code: LOW findings flag ``assert``, ``random`` used for something other than cryptography,
``try``/``except``/``pass``; MEDIUM ones of lower confidence are guesses.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["Finding", "SecurityScanError", "refuses", "scan"]

TIMEOUT_S = 120.0


class SecurityScanError(RuntimeError):
    """Bandit could not scan the code (it is missing, or the code does not parse)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One issue bandit found, at ``path:line``."""

    test_id: str
    severity: str
    confidence: str
    text: str
    path: str
    line: int

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: bandit {self.test_id} ({self.severity} severity, "
            f"{self.confidence} confidence): {self.text}"
        )


def refuses(finding: Finding) -> bool:
    """Whether ``finding`` is enough to refuse a plugin (see the module's docstring).

    >>> refuses(Finding("B602", "HIGH", "HIGH", "shell=True", "p.py", 3))
    True
    >>> refuses(Finding("B311", "LOW", "HIGH", "random", "p.py", 3))
    False
    >>> refuses(Finding("B108", "MEDIUM", "MEDIUM", "tmp", "p.py", 3))
    False
    """
    return finding.severity == "HIGH" or (
        finding.severity == "MEDIUM" and finding.confidence == "HIGH"
    )


def scan(paths: list[Path], root: Path) -> list[Finding]:
    """Every finding of bandit in ``paths``, named relative to ``root``, in file order.

    Raises
    ------
    SecurityScanError
        If bandit does not run, or cannot read a file.
    """
    if not paths:
        return []
    try:
        # The interpreter running the worker, with arguments that are paths: no shell.
        done = subprocess.run(
            [sys.executable, "-m", "bandit", "-f", "json", "-q", *map(str, paths)],
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SecurityScanError(f"bandit took longer than {TIMEOUT_S:.0f} s") from None
    try:
        report = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SecurityScanError(f"bandit failed (exit {done.returncode}): {last}") from None
    for error in report.get("errors", []):
        reason = " ".join(str(error["reason"]).split())
        raise SecurityScanError(f"bandit cannot read {_shown(error['filename'], root)}: {reason}")
    findings = [
        Finding(
            r["test_id"],
            r["issue_severity"],
            r["issue_confidence"],
            " ".join(r["issue_text"].split()),
            _shown(r["filename"], root),
            r["line_number"],
        )
        for r in report.get("results", [])
    ]
    return sorted(findings, key=lambda f: (f.path, f.line))


def _shown(filename: str, root: Path) -> str:
    path = Path(filename)
    return str(path.relative_to(root)) if path.is_relative_to(root) else filename

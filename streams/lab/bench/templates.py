"""Template mining over a raw log file: templates, throughput, and grouping accuracy.

:func:`run_bench_templates` redacts and mines every line of a log (one message per line),
writes each line's template if asked, and times the pipeline against a baseline measured in
the same run on the same lines: redaction, masking and tokenising alone, i.e. everything
but the template tree. The ratio says what mining adds and compares across machines.

:func:`grouping_accuracy` is the metric of the Loghub benchmark (Zhu et al., "Tools and
Benchmarks for Automated Log Parsing", ICSE-SEIP 2019): a message is parsed correctly when
the set of messages given its template equals the set given its true event.
"""

from __future__ import annotations

import csv
import os
import time
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from models.text.redact import Redactor
from models.text.templates import TemplateMiner, mask

__all__ = [
    "TARGET_MESSAGES_PER_S",
    "evaluate_grouping",
    "format_bench_templates",
    "grouping_accuracy",
    "read_lines",
    "read_truth",
    "run_bench_templates",
]

TARGET_MESSAGES_PER_S = 20_000.0
"""Target throughput of redaction and mining together, messages per second."""

# Timed passes are repeated until this much time is spent (at most _MAX_PASSES), and the
# fastest pass counts: short logs would otherwise be timed on a single noisy pass.
_MIN_TIMED_S = 0.5
_MAX_PASSES = 5


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a log file, without line ends; undecodable bytes are replaced."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return [line.rstrip("\r\n") for line in f]


def read_truth(path: str | os.PathLike[str]) -> list[str]:
    """Event ids of a Loghub ``*.truth.csv`` (``line,EventId``, lines 1-based), in line order."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = sorted((int(row["line"]), row["EventId"]) for row in csv.DictReader(f))
    return [event for _, event in rows]


def grouping_accuracy(assignments: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """Share of messages whose template groups exactly the messages of their true event.

    Examples
    --------
    >>> grouping_accuracy(["a", "a", "b", "c"], ["E1", "E1", "E2", "E2"])
    0.5
    >>> grouping_accuracy([1, 1, 2], ["x", "x", "y"])
    1.0
    """
    if len(assignments) != len(truth):
        raise ValueError(f"{len(assignments)} assignments for {len(truth)} true events")
    if not truth:
        return 1.0
    by_template: dict[Hashable, list[int]] = defaultdict(list)
    event_size: dict[Hashable, int] = defaultdict(int)
    for i, (template, event) in enumerate(zip(assignments, truth, strict=True)):
        by_template[template].append(i)
        event_size[event] += 1
    correct = 0
    for members in by_template.values():
        events = {truth[i] for i in members}
        if len(events) == 1 and event_size[truth[members[0]]] == len(members):
            correct += len(members)
    return correct / len(truth)


def _mine(lines: Sequence[str], redactor: Redactor, params: Mapping[str, Any]) -> list[str]:
    miner = TemplateMiner(**params)
    learn, redact = miner.learn_one, redactor.redact
    ids = [learn(redact(line)).template_id for line in lines]
    # The grouping at the end of the run: templates merged since stand for the merged one.
    return [miner.resolve(template_id) for template_id in ids]


def _tokenise(lines: Sequence[str], redactor: Redactor) -> None:
    redact = redactor.redact
    for line in lines:
        mask(redact(line)).split()


def run_bench_templates(
    lines: Sequence[str],
    assignments_path: str | os.PathLike[str] | None = None,
    *,
    miner_params: Mapping[str, Any] | None = None,
    redactor: Redactor | None = None,
    truth: Sequence[Hashable] | None = None,
) -> dict[str, Any]:
    """Redact and mine ``lines``; report templates, throughput and the same-run baseline.

    Parameters
    ----------
    lines
        Raw messages, one per log line.
    assignments_path
        If given, a CSV written there with a header and, for every line in order,
        ``line,template_id,template`` (line numbers 1-based; the template as it stands at
        the end of the run).
    miner_params
        Keyword arguments of :class:`~models.text.templates.TemplateMiner`.
    redactor
        The redactor to apply first; the default built-in patterns if ``None``.
    truth
        The true event of every line (:func:`read_truth`), to score the grouping with
        :func:`grouping_accuracy`.

    Returns
    -------
    dict
        ``lines``, ``n_templates``, ``templates`` (``template_id``, ``count``, ``template``,
        most frequent first), ``messages_per_s``, ``baseline`` (its name and
        ``messages_per_s``), ``ratio_to_baseline``, ``target_messages_per_s``,
        ``meets_target``, ``passes``, ``assignments_path`` and ``grouping_accuracy``
        (``None`` without ``truth``). Template ids are the final ones: a line whose template
        was merged into another later counts (and is written) as the merged template's.

    Examples
    --------
    >>> r = run_bench_templates(["disk sda1 is full", "disk sdb2 is full", "login: a@example.com"])
    >>> r["n_templates"], [t["template"] for t in r["templates"]]
    (2, ['disk <*> is full', 'login: <EMAIL>'])
    """
    params = dict(miner_params or {})
    redactor = redactor or Redactor()
    miner = TemplateMiner(**params)
    ids: list[str] = []
    # A template evicted during the run is shown as the miner last knew it.
    last_text: dict[str, str] = {}
    for line in lines:
        match = miner.learn_one(redactor.redact(line))
        ids.append(match.template_id)
        last_text[match.template_id] = match.template
    # The grouping at the end of the run: a template merged since stands for the merged one.
    ids = [miner.resolve(template_id) for template_id in ids]
    templates = {t.template_id: t for t in miner.templates()}
    if assignments_path is not None:
        last_text.update({tid: t.template for tid, t in templates.items()})
        path = Path(assignments_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("line", "template_id", "template"))
            for n, template_id in enumerate(ids, start=1):
                writer.writerow((n, template_id, last_text[template_id]))

    mine_s, base_s, passes = float("inf"), float("inf"), 0
    spent = 0.0
    while lines and passes < _MAX_PASSES and (passes == 0 or spent < _MIN_TIMED_S):
        # Alternate the two so that both see the same machine noise.
        t0 = time.perf_counter()
        _tokenise(lines, redactor)
        t1 = time.perf_counter()
        _mine(lines, redactor, params)
        t2 = time.perf_counter()
        base_s, mine_s = min(base_s, t1 - t0), min(mine_s, t2 - t1)
        spent += t2 - t0
        passes += 1
    rate = len(lines) / mine_s if lines and mine_s > 0 else 0.0
    base_rate = len(lines) / base_s if lines and base_s > 0 else 0.0
    return {
        "lines": len(lines),
        "n_templates": len(templates),
        "templates": [
            {"template_id": t.template_id, "count": t.count, "template": t.template}
            for t in templates.values()
        ],
        "messages_per_s": rate,
        "baseline": {
            "name": "redact + mask + split (no template tree)",
            "messages_per_s": base_rate,
        },
        "ratio_to_baseline": rate / base_rate if base_rate else 0.0,
        "target_messages_per_s": TARGET_MESSAGES_PER_S,
        "meets_target": rate >= TARGET_MESSAGES_PER_S,
        "passes": passes,
        "assignments_path": None if assignments_path is None else str(assignments_path),
        "grouping_accuracy": None if truth is None else grouping_accuracy(ids, truth),
    }


def format_bench_templates(result: Mapping[str, Any], top: int = 30) -> str:
    """A readable summary of :func:`run_bench_templates`'s result: templates, then speed."""
    templates = result["templates"]
    lines = [f"Templates: {result['n_templates']} from {result['lines']} lines"]
    width = max((len(str(t["count"])) for t in templates[:top]), default=1)
    lines += [
        f"  {t['template_id']}  {t['count']:>{width}}  {t['template']}" for t in templates[:top]
    ]
    if len(templates) > top:
        rest = sum(t["count"] for t in templates[top:])
        lines.append(f"  ... {len(templates) - top} more templates, {rest} lines")
    base = result["baseline"]
    lines += [
        "",
        f"redact + mine:  {result['messages_per_s']:>12,.0f} messages/s "
        f"(best of {result['passes']} passes)",
        f"baseline:       {base['messages_per_s']:>12,.0f} messages/s ({base['name']})",
        f"ratio to baseline: {result['ratio_to_baseline']:.2f}; target "
        f"{result['target_messages_per_s']:,.0f} messages/s: "
        + ("met" if result["meets_target"] else "NOT met"),
    ]
    if result.get("grouping_accuracy") is not None:
        lines.append(f"grouping accuracy against the truth: {result['grouping_accuracy']:.4f}")
    if result["assignments_path"]:
        lines.append(f"assignments written to {result['assignments_path']}")
    return "\n".join(lines)


def evaluate_grouping(
    log_dir: str | os.PathLike[str], miner_params: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Grouping accuracy on every ``NAME.txt`` of ``log_dir`` that has a ``NAME.truth.csv``."""
    out: dict[str, float] = {}
    redactor = Redactor()
    for truth_path in sorted(Path(log_dir).glob("*.truth.csv")):
        name = truth_path.name.removesuffix(".truth.csv")
        lines = read_lines(truth_path.with_name(f"{name}.txt"))
        out[name] = grouping_accuracy(
            _mine(lines, redactor, miner_params or {}), read_truth(truth_path)
        )
    return out

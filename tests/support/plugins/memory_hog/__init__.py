"""A plugin that keeps every value it learns: its memory grows past its bound."""

from __future__ import annotations

from models.registry import Entry


class Hoarder:
    """Scores a value by its rank among all values seen."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def score_one(self, x: dict[str, float]) -> float:
        if not self.values:
            return 0.0
        return sum(v < x["value"] for v in self.values[-50:]) / 50.0

    def learn_one(self, x: dict[str, float]) -> None:
        self.values.append(x["value"])


ENTRY = Entry("detectors", "hoarder", Hoarder, max_bytes_per_key=4096, summary="keeps every value")

"""Detector plugins for the end-to-end tests, loaded by workers through
``AUTOPILOT_PLUGIN_MODULES=tests.support.plugins.e2e``. A package of their own, since
admission scans a plugin's whole package.

The entries are module-level :class:`~models.registry.Entry` objects, not registered on
import: the registry registers them when a worker (or a test) loads the module.
"""

from __future__ import annotations

from models.registry import Entry

__all__ = ["CEILING", "EVERY_TENTH_RAISES"]


class Ceiling:
    """Scores 1.0 for a value above ``ceiling``, 0.0 otherwise; learns nothing."""

    def __init__(self, ceiling: float = 500.0) -> None:
        self.ceiling = ceiling

    def learn_one(self, x: dict) -> None:
        pass

    def score_one(self, x: dict) -> float:
        return 1.0 if x["value"] > self.ceiling else 0.0


class EveryTenthRaises:
    """A plugin with a bug that admission's canned stream (values from 50 up) cannot show:
    it raises on every 10th value below 1, as a ratio metric gives."""

    def __init__(self) -> None:
        self.ratios = 0

    def learn_one(self, x: dict) -> None:
        pass

    def score_one(self, x: dict) -> float:
        if x["value"] < 1.0:
            self.ratios += 1
            if self.ratios % 10 == 0:
                raise RuntimeError("every tenth ratio")
        return 0.0


CEILING = Entry("detectors", "ceiling", Ceiling, 1024, "flags values above a fixed ceiling")
EVERY_TENTH_RAISES = Entry(
    "detectors", "every-tenth-raises", EveryTenthRaises, 1024, "raises on every 10th value below 1"
)

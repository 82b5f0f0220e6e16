"""Monthly budgets of the cost engine, in USD: the whole fleet, per service, per region.

The budgets are a TOML file (the bundled one is ``streams/config/budgets.toml``)::

    [budget]
    total_usd = 8000.0    # the whole fleet; no fleet budget if not given

    [budget.services]
    checkout = 1200.0

    [budget.regions]
    us-east = 2500.0

Amounts are numbers >= 0 and unknown keys are errors; a bad file raises
:class:`BudgetsError` naming the line and the field, e.g.
``budgets.toml:7: budget.services.checkout: must be a number, got the string '1200'``.
A ``budget`` decision is made when a scope's month-end forecast crosses its budget
(:func:`models.policy.cost.budget_crossing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemas.config.toml import CONFIG_DIR, ConfigError, Value, load, parse

__all__ = ["DEFAULT_BUDGETS_PATH", "Budgets", "BudgetsError", "load_budgets", "parse_budgets"]

DEFAULT_BUDGETS_PATH = CONFIG_DIR / "budgets.toml"
"""The bundled budgets, sized so that the simulated fleet exceeds one of them."""


class BudgetsError(ConfigError):
    """A budgets file is unreadable or invalid; the message names line and field."""


@dataclass(frozen=True, slots=True)
class Budgets:
    """Monthly budgets in USD: for the whole fleet, per service and per region.

    Examples
    --------
    >>> b = Budgets(total=1000.0, services={"checkout": 300.0})
    >>> [(scope, amount) for scope, amount in b.scopes()]
    [((), 1000.0), ((('service', 'checkout'),), 300.0)]
    """

    total: float | None = None
    services: Mapping[str, float] = field(default_factory=dict)
    regions: Mapping[str, float] = field(default_factory=dict)

    def scopes(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        """Each budget as ``(subject items, monthly USD)``; ``()`` is the whole fleet."""
        out: list[tuple[tuple[tuple[str, str], ...], float]] = []
        if self.total is not None:
            out.append(((), self.total))
        out += [((("service", s),), b) for s, b in self.services.items()]
        out += [((("region", r),), b) for r, b in self.regions.items()]
        return out


def _amounts(value: Value) -> dict[str, float]:
    amounts = value.table(of="name = monthly USD").items()
    return {name: float(amount.number(0)) for name, amount in amounts}


def _build(doc: Value) -> Budgets:
    budget = doc.table(("budget",)).get("budget", {}).table(("total_usd", "services", "regions"))
    return Budgets(
        total=float(budget.required("total_usd").number(0)) if "total_usd" in budget else None,
        services=_amounts(budget.get("services", {})),
        regions=_amounts(budget.get("regions", {})),
    )


def parse_budgets(text: str, *, source: str = "<string>") -> Budgets:
    """Parse and validate TOML budgets.

    Raises
    ------
    BudgetsError
        ``source:line: field: problem`` for the first error, syntax or meaning.

    Examples
    --------
    >>> parse_budgets('[budget]\\ntotal_usd = 500\\n[budget.regions]\\neu-west = 200').scopes()
    [((), 500.0), ((('region', 'eu-west'),), 200.0)]
    >>> parse_budgets('[budget.services]\\ncheckout = -1', source="budgets.toml")
    Traceback (most recent call last):
    ...
    schemas.config.budgets.BudgetsError: budgets.toml:2: budget.services.checkout: \
must be >= 0, got -1
    """
    return parse(text, _build, source=source, error=BudgetsError)


def load_budgets(path: str | Path | None = None) -> Budgets:
    """Read and validate a TOML budgets file; ``None`` reads :data:`DEFAULT_BUDGETS_PATH`.

    Raises
    ------
    BudgetsError
        If the file is missing, unreadable or invalid (naming the line and field).

    Examples
    --------
    >>> load_budgets().services
    {'checkout': 1200.0}
    """
    path = DEFAULT_BUDGETS_PATH if path is None else Path(path)
    return load(path, _build, error=BudgetsError, what="budgets")

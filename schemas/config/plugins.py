"""Which plugin serves what: the plugins file and the control records that change it.

The file (``AUTOPILOT_PLUGINS_FILE``) is TOML, one array of tables per plugin group; a
binding names a registered plugin (:mod:`models.registry`) and the scope it serves, and may
give the plugin keyword configuration::

    [[detectors]]
    plugin = "river-hst"           # registered name
    service = "checkout"           # optional: every service if absent
    metric = "latency_p99_ms"      # optional: every metric if absent

    [[forecasters]]                # the demand forecast the scaler of a service sizes for
    plugin = "river-holtwinters"
    service = "checkout"

    [[policies]]                   # the scaling policy of a service
    plugin = "hpa"
    service = "batch"
    config = { target_utilisation = 0.7 }

    [[actions]]                    # what is done with decisions of a kind, besides the actuator
    plugin = "webhook"
    kind = "remediation"           # optional: every kind if absent
    config = { url = "https://hooks.example.com/autopilot" }

For a series, the most specific binding wins: service and metric, then service, then metric,
then neither; the built-in serves where none does. Every action bound to a decision's kind
receives it. At run time a control record (``autopilot plugins bind``, on the compacted
topic ``autopilot.control``, keyed ``plugin/<group>/<scope>``) adds, replaces or removes
(``plugin = null``) the binding of one scope, on every worker, without a restart.

Examples
--------
>>> bindings = PluginBindings.from_dict(
...     {"detectors": [{"plugin": "river-hst", "service": "checkout"},
...                    {"plugin": "other", "service": "checkout", "metric": "cpu_util"}]})
>>> bindings.for_series("detectors", "checkout", "cpu_util").plugin
'other'
>>> bindings.for_series("detectors", "checkout", "rps").plugin
'river-hst'
>>> bindings.for_series("detectors", "search", "rps") is None
True
>>> bindings.apply(Binding("detectors", None, service="checkout"))
>>> bindings.for_series("detectors", "checkout", "rps") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.config.toml import ConfigError, Value, from_mapping, load

__all__ = [
    "PLUGIN_GROUPS",
    "Binding",
    "PluginBindings",
    "PluginConfigError",
    "load_plugin_bindings",
]

PLUGIN_GROUPS = ("detectors", "forecasters", "policies", "actions")
"""The plugin groups, as in :data:`models.registry.PLUGIN_GROUPS` (schemas import no model)."""
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SERIES_FIELDS = ("plugin", "service", "metric", "config")
_KIND_FIELDS = ("plugin", "kind", "config")


class PluginConfigError(ConfigError):
    """The plugins file or a control record is invalid."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One plugin serving one scope; ``plugin`` ``None`` gives the scope back to the built-in.

    Series groups (detectors, forecasters, policies) are scoped by ``service`` and
    ``metric``, actions by decision ``kind``; ``None`` is any.
    """

    group: str
    plugin: str | None
    service: str | None = None
    metric: str | None = None
    kind: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        """The scope as a control record's key part: ``service/metric`` or ``kind``, ``*`` for any.

        >>> Binding("detectors", "x", service="checkout").scope
        'checkout/*'
        >>> Binding("actions", "webhook").scope
        '*'
        """
        if self.group == "actions":
            return self.kind or "*"
        return f"{self.service or '*'}/{self.metric or '*'}"

    @property
    def control_key(self) -> str:
        """Key of the control record that sets this scope's binding."""
        return f"plugin/{self.group}/{self.scope}"

    def to_dict(self) -> dict[str, Any]:
        """The binding as a control record's value."""
        out: dict[str, Any] = {"group": self.group, "plugin": self.plugin}
        for name in ("service", "metric", "kind"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.config:
            out["config"] = dict(self.config)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "control record") -> Binding:
        """Validate a control record's value (``plugin`` may be null: back to the built-in)."""
        return from_mapping(raw, _build_record, source=source, error=PluginConfigError)


@dataclass(slots=True)
class PluginBindings:
    """The bindings in force: the file's, then the control records' changes, by scope."""

    bindings: dict[tuple[str, str], Binding] = field(default_factory=dict)
    source: str = ""

    def apply(self, binding: Binding) -> None:
        """Set the binding of ``binding``'s scope; ``plugin`` ``None`` removes it."""
        where = (binding.group, binding.scope)
        if binding.plugin is None:
            self.bindings.pop(where, None)
        else:
            self.bindings[where] = binding

    def serves(self, group: str, service: str) -> bool:
        """Whether any binding of a series group may serve ``service``: a quick test before
        looking up each of its metrics."""
        return any(
            g == group and (scope.startswith("*/") or scope.split("/", 1)[0] == service)
            for g, scope in self.bindings
        )

    def for_series(self, group: str, service: str, metric: str | None = None) -> Binding | None:
        """The binding serving ``metric`` of ``service`` in a series group, if any."""
        bindings = self.bindings
        for scope in (f"{service}/{metric}", f"{service}/*", f"*/{metric}", "*/*"):
            found = bindings.get((group, scope))
            if found is not None:
                return found
        return None

    def for_kind(self, kind: str) -> list[Binding]:
        """The actions bound to decisions of ``kind``: that kind's, then any kind's."""
        return [b for s in (kind, "*") if (b := self.bindings.get(("actions", s))) is not None]

    def __len__(self) -> int:
        return len(self.bindings)

    def __iter__(self):
        return iter(self.bindings.values())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "") -> PluginBindings:
        """Validate a decoded plugins document."""
        return from_mapping(raw, lambda doc: _build(doc, source), source=source,
                            error=PluginConfigError)  # fmt: skip


def load_plugin_bindings(path: str | Path) -> PluginBindings:
    """Read and validate the plugins file at ``path``."""
    return load(path, lambda doc: _build(doc, str(path)), error=PluginConfigError,
                what="plugins")  # fmt: skip


def _binding(group: str, value: Value, allow_null: bool = False) -> Binding:
    fields = _KIND_FIELDS if group == "actions" else _SERIES_FIELDS
    body = value.table((*fields, "group") if allow_null else fields)
    plugin_value = body.required("plugin")
    plugin = None if allow_null and plugin_value.raw is None else plugin_value.string(_NAME)
    scope = {}
    for name in fields[1:-1]:
        if name in body:
            scope[name] = body.required(name).string(_NAME)
    config = body.get("config", {})
    config.table()
    return Binding(group, plugin, config=dict(config.raw), **scope)


def _build(doc: Value, source: str) -> PluginBindings:
    top = doc.table(PLUGIN_GROUPS)
    bindings = PluginBindings(source=source)
    for group in PLUGIN_GROUPS:
        seen: set[str] = set()
        for item in top.get(group, []).array(f"{group} bindings"):
            binding = _binding(group, item)
            if binding.scope in seen:
                raise item.invalid(f"a second binding of {group} for scope {binding.scope}")
            seen.add(binding.scope)
            bindings.apply(binding)
    return bindings


def _build_record(doc: Value) -> Binding:
    group = doc.table((*_SERIES_FIELDS, *_KIND_FIELDS, "group")).required("group")
    return _binding(group.one_of(PLUGIN_GROUPS), doc, allow_null=True)

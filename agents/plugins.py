"""Plugin bindings changed at run time, on every worker, and what the plugins did.

``autopilot plugins bind|unbind`` writes a binding (:class:`schemas.config.plugins.Binding`)
to the compacted ``autopilot.control``, keyed ``plugin/<group>/<scope>``. Every worker reads
every such record (:mod:`agents.runtime.control`) and applies it within seconds, without a
restart; the audit agent appends it to the trail. A swapped detector hands over as
:mod:`models.plugins.detectors` says.

``GET /plugins/`` shows the registered plugins, those refused and why, the bindings in force
and each plugin's calls, errors, overruns and quarantine.
"""

from __future__ import annotations

import logging

import orjson

from agents.runtime.control import follow_control
from agents.runtime.plugins import plugins
from schemas.config.plugins import Binding, PluginConfigError
from streams.runtime.app import app, settings, topic_names
from streams.runtime.exporter import PluginCollector

__all__ = ["follow_bindings", "plugins_view"]

log = logging.getLogger(__name__)

PluginCollector.install(lambda: plugins.guard.stats)


async def _handle(key: bytes, value: bytes | None) -> None:
    if value is None:
        return  # a tombstone: compaction's, not a request (unbind writes "plugin": null)
    try:
        binding = Binding.from_dict(orjson.loads(value), source=key.decode(errors="replace"))
    except (orjson.JSONDecodeError, PluginConfigError) as exc:
        log.warning("control: ignored an invalid plugin binding: %s", exc)
        return
    plugins.bind(binding, source="autopilot.control")


@app.task
async def follow_bindings() -> None:
    """Apply every plugin binding of the control topic, old and new."""
    await follow_control(settings, topic_names.control, "plugin", _handle)


@app.page("/plugins/")
async def plugins_view(view, request):
    return view.json(plugins.view())

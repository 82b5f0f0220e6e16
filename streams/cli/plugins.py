"""``autopilot plugins list|check|bind|unbind``: the registered plugins, whether one is
admitted, and which serves what."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click
import orjson

from models import registry
from models.plugins.checks import CheckResult
from schemas.config.plugins import Binding, PluginConfigError
from streams.plugins.admission import admit
from streams.plugins.loading import load_plugins

__all__ = ["plugins"]

_json = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of the text."
)


def _describe(entry: registry.Entry) -> dict[str, Any]:
    return {
        "group": entry.group,
        "name": entry.name,
        "builtin": entry.builtin,
        "summary": entry.summary,
        "capabilities": sorted(entry.capabilities),
        "max_bytes_per_key": entry.max_bytes_per_key,
        "max_seconds_per_call": entry.max_seconds_per_call,
    }


def _figures(figures: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in figures.items())


@click.group()
def plugins() -> None:
    """Detectors, forecasters, policies and actions that plug into the worker.

    Plugins are registry entries published under the entry points
    paas_autopilot.<group> of an installed package, or defined in the modules named by
    AUTOPILOT_PLUGIN_MODULES (comma-separated). The worker admits each plugin it is
    bound to at start-up; a refused one is replaced by the built-in.
    """


@plugins.command("list")
@_json
def list_plugins(as_json: bool) -> None:
    """Every registered plugin and built-in, with its limits; then those refused on load."""
    refused = load_plugins()
    entries = [
        _describe(registry.entry(group, name))
        for group in registry.PLUGIN_GROUPS
        for name in registry.names(group)
    ]
    if as_json:
        listing = {"plugins": entries, "refused": refused}
        click.echo(orjson.dumps(listing).decode())
        return
    for e in entries:
        kind = "built-in" if e["builtin"] else "plugin"
        needs = ",".join(e["capabilities"]) or "-"
        click.echo(
            f"{e['group']:<12} {e['name']:<16} {kind:<8} {e['max_bytes_per_key']:>8,d} B/key "
            f"{e['max_seconds_per_call'] * 1e6:>8,.0f} µs/call  needs {needs:<12} {e['summary']}"
        )
    for where, reason in sorted(refused.items()):
        click.echo(f"refused {where}: {reason}")


def _check_line(check: CheckResult) -> str:
    if check.ok:
        return f"  ok    {check.name}  {_figures(check.figures)}".rstrip()
    return f"  FAIL  {check.name}: {check.reason}  {_figures(check.figures)}".rstrip()


@plugins.command("check")
@click.argument("name")
@click.option(
    "--group",
    type=click.Choice(registry.PLUGIN_GROUPS),
    default="detectors",
    show_default=True,
    help="The plugin group NAME is registered in.",
)
@_json
def check_plugin(name: str, group: str, as_json: bool) -> None:
    """Run the admission of plugin NAME as the worker does at start-up.

    A plugin is scanned by bandit and for capabilities it uses without declaring
    (network, filesystem, subprocess), then, for a detector, run through the conformance
    suite: a canned series, determinism, checkpoint round trip, memory per series, time
    per call. Prints each check and a final verdict line. Exit code 0 when admitted, 1
    when refused, 2 when no such plugin is registered.
    """
    refused = load_plugins()
    where = f"{group}/{name}"
    try:
        entry = registry.entry(group, name)
    except registry.RegistryError as exc:
        if where not in refused:
            click.echo(f"autopilot: {exc}", err=True)
            sys.exit(2)
        # Refused on load (it does not import, or clashes with another): a refusal too.
        reason, ok, checks, figures = f"refused on load: {refused[where]}", False, (), {}
    else:
        verdict = admit(entry)
        ok, checks, figures = verdict.ok, verdict.checks, verdict.figures
        reason = verdict.reason if ok else f"refused: {verdict.reason}"
    if as_json:
        result = {
            "group": group,
            "name": name,
            "ok": ok,
            "reason": reason,
            "figures": figures,
            "checks": [check.to_dict() for check in checks],
        }
        click.echo(orjson.dumps(result).decode())
    else:
        for check in checks:
            click.echo(_check_line(check))
        click.echo(f"{where}: {reason}")
    sys.exit(0 if ok else 1)


def _scope_options(command):
    for option in reversed((
        click.option("--service", help="Service it serves (series groups); every one if absent."),
        click.option("--metric", help="Metric it serves (detectors); every one if absent."),
        click.option("--kind", help="Decision kind it serves (actions); every one if absent."),
    )):  # fmt: skip
        command = option(command)
    return command


def _send_binding(binding: Binding) -> None:
    from streams.kafka.control import send_control
    from streams.runtime.app import settings

    value = orjson.dumps(binding.to_dict())
    asyncio.run(send_control(settings, binding.control_key.encode(), value))


def _binding(group: str, plugin: str | None, service, metric, kind, config: str) -> Binding:
    try:
        raw = {"group": group, "plugin": plugin, "config": orjson.loads(config)}
        raw |= {k: v for k, v in (("service", service), ("metric", metric), ("kind", kind)) if v}
        return Binding.from_dict(raw, source="command line")
    except (orjson.JSONDecodeError, PluginConfigError) as exc:
        raise click.BadParameter(str(exc)) from None


@plugins.command("bind")
@click.argument("group", type=click.Choice(registry.PLUGIN_GROUPS))
@click.argument("name")
@_scope_options
@click.option("--config", default="{}", help="The plugin's keyword configuration, as JSON.")
def bind(group: str, name: str, service, metric, kind, config: str) -> None:
    """Make plugin NAME of GROUP serve a scope, on every worker, without a restart.

    Writes the binding to the compacted topic autopilot.control, keyed
    plugin/GROUP/SCOPE: every worker applies it within seconds (and a worker started
    later, at start-up), after admitting the plugin; the audit trail records it. A
    swapped detector learns in the shadow of the one it replaces until warmed up. Binding
    a quarantined plugin again lifts its quarantine.

    Example: autopilot plugins bind detectors river-hst --service checkout --metric
    latency_p99_ms
    """
    load_plugins()
    if name not in registry.names(group):
        known = ", ".join(registry.names(group)) or "none"
        click.echo(f"autopilot: no {group} plugin named {name!r} here (registered: {known})",
                   err=True)  # fmt: skip
        sys.exit(2)
    binding = _binding(group, name, service, metric, kind, config)
    _send_binding(binding)
    click.echo(f"{group} {binding.scope}: now served by {name} (sent as {binding.control_key})")


@plugins.command("unbind")
@click.argument("group", type=click.Choice(registry.PLUGIN_GROUPS))
@_scope_options
def unbind(group: str, service, metric, kind) -> None:
    """Give a scope back to the built-in, on every worker, without a restart.

    The scope is matched exactly (the one a bind used), not by precedence.
    """
    binding = _binding(group, None, service, metric, kind, "{}")
    _send_binding(binding)
    click.echo(f"{group} {binding.scope}: now served by the built-in")

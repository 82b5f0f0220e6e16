"""``autopilot plugins list|check``: the registered plugins, and whether one is admitted."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from models import registry
from models.plugins.checks import CheckResult
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

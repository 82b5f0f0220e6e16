"""``autopilot native build|status``: the compiled build of the models' kernels."""

from __future__ import annotations

from pathlib import Path

import click

from models.native import KERNELS, MANIFEST, cache_dir, digest, loaded_from

__all__ = ["native"]

_cache = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where builds are kept [AUTOPILOT_NATIVE_CACHE or ~/.cache/paas-autopilot/native].",
)


@click.group()
def native() -> None:
    """The models' kernels compiled with mypyc: a worker decides about twice as fast.

    Workers, benches and tests load the build of the kernels' current sources when there
    is one (AUTOPILOT_NATIVE=off runs the sources instead); decisions are the same.
    """


@native.command()
@_cache
@click.option("--force", is_flag=True, help="Compile again even if the build exists.")
def build(cache_dir: Path | None, force: bool) -> None:
    """Compile the kernels (needs the native extra: pip install 'paas-autopilot[native]')."""
    from streams.native.build import NativeBuildError
    from streams.native.build import build as make

    try:
        made = make(cache_dir, force=force, log=lambda msg: click.echo(msg, err=True))
    except (NativeBuildError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    what = f"built in {made.seconds:.1f} s" if made.made else "already built"
    click.echo(f"native: {what}: {len(made.modules)} modules in {made.folder}")


@native.command()
def status() -> None:
    """Say whether this process runs the kernels compiled, and where their build is."""
    folder = cache_dir() / digest()
    built = (folder / MANIFEST).exists()
    click.echo(f"kernels: {', '.join(KERNELS)}")
    click.echo(f"build of these sources: {folder if built else 'none (autopilot native build)'}")
    used = loaded_from()
    click.echo(f"this process runs them: {'compiled, from ' + str(used) if used else 'as Python'}")

"""Compile the models' kernels with mypyc into the build :mod:`models.native` loads.

The kernels' sources are copied to a scratch folder and compiled there, so that no compiled
file lands beside the sources; the compiled modules and a manifest then go to the cache
folder named by :func:`models.native.digest`, in one rename. A lock keeps two builds of
one cache from running at once.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.native import KERNELS, MANIFEST, cache_dir, digest, source_of

__all__ = ["Build", "NativeBuildError", "build"]


class NativeBuildError(RuntimeError):
    """The kernels could not be compiled; the message says why."""


@dataclass(frozen=True)
class Build:
    """A build of the kernels: where it is, what it holds, and whether this call made it."""

    folder: Path
    modules: dict[str, str]
    made: bool
    seconds: float


def _modules_of(src: Path) -> dict[str, str]:
    """Module name -> file of every compiled module mypyc left under ``src``."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    found = {}
    for path in src.rglob(f"*{suffix}"):
        rel = path.relative_to(src)
        if rel.parts[0] == "build":
            continue
        name = ".".join((*rel.parts[:-1], rel.name[: -len(suffix)]))
        found[name] = str(rel)
    return found


def _keep(modules: dict[str, str], src: Path, out: Path) -> None:
    """Copy the compiled ``modules`` (name -> file under ``src``) to ``out`` at the same
    paths, with the manifest that maps their names to them.

    Each keeps its package folders: two kernels of one last name (``models.health.region``,
    a ``models.policy.region``) would otherwise be one file, the second copied over the first.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     src, out = Path(tmp, "src"), Path(tmp, "out")
    ...     files = {"m.a.region": "m/a/region.so", "m.b.region": "m/b/region.so"}
    ...     for name, file in files.items():
    ...         (src / file).parent.mkdir(parents=True, exist_ok=True)
    ...         _ = (src / file).write_text(name)
    ...     _keep(files, src, out)
    ...     kept = json.loads((out / MANIFEST).read_text())["modules"]
    ...     [(out / kept[name]).read_text() for name in sorted(kept)]
    ['m.a.region', 'm.b.region']
    """
    for file in modules.values():
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / file, out / file)
    (out / MANIFEST).write_text(json.dumps({"modules": modules}, indent=1))


def _compile(src: Path, log: Callable[[str], None]) -> None:
    """Run mypyc on the kernels copied under ``src``."""
    for module in KERNELS:
        target = source_of(module, src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_of(module), target)
        # Packages, so that mypy names the modules as they are imported.
        for package in target.relative_to(src).parents:
            if package != Path("."):
                (src / package / "__init__.py").touch()
    command = [
        sys.executable, "-m", "mypyc",
        # The kernels are checked, not what they import (River, numpy): fast, and mypyc
        # compiles only the files it is given.
        "--follow-imports=skip", "--ignore-missing-imports",
        "--cache-dir", str(src / ".mypy_cache"),
        *(str(source_of(m, src).relative_to(src)) for m in KERNELS),
    ]  # fmt: skip
    log(f"native: compiling {len(KERNELS)} kernels with mypyc (about 20 s on two cores)...")
    done = subprocess.run(command, cwd=src, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise NativeBuildError(f"mypyc failed (exit {done.returncode}):\n{tail}")


def build(
    cache: Path | None = None, force: bool = False, log: Callable[[str], None] = print
) -> Build:
    """The build of the kernels' current sources in ``cache``, made unless there is one
    (or ``force``)."""
    cache = cache_dir() if cache is None else cache
    folder = cache / digest()
    started = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = folder / MANIFEST
        if manifest.exists() and not force:
            modules = json.loads(manifest.read_text())["modules"]
            return Build(folder, modules, made=False, seconds=time.monotonic() - started)
        with tempfile.TemporaryDirectory(prefix="build-", dir=cache) as scratch:
            src = Path(scratch) / "src"
            _compile(src, log)
            modules = _modules_of(src)
            missing = sorted(set(KERNELS) - set(modules))
            if missing:
                raise NativeBuildError(f"mypyc made no module for {', '.join(missing)}")
            out = Path(scratch) / "out"
            _keep(modules, src, out)
            if folder.exists():
                shutil.rmtree(folder)
            out.rename(folder)
    return Build(folder, modules, made=True, seconds=time.monotonic() - started)

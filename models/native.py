"""Where the models' kernels come from: a compiled build of these very sources, or the sources.

Every sample of every series goes through the modules of :data:`KERNELS` (anomaly
detection, demand forecasting, the predictive scaler and its estimators, breach
forecasting). ``autopilot native build`` compiles them with mypyc into a build named by
:func:`digest` of their sources and of the interpreter; importing :mod:`models` calls
:func:`install`, which loads each kernel from the build made of the sources at hand, if
there is one. An edited kernel has another digest, so an older build never shadows it.

Without a build, or with ``AUTOPILOT_NATIVE=off``, the same sources run as plain Python.
Decisions are the same either way, bit for bit (``tests/unit/test_native.py``); a worker
decides about twice as fast with the build (``autopilot bench scaleout``).

Builds are kept in ``$AUTOPILOT_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/paas-autopilot/native``
(``~/.cache`` without ``XDG_CACHE_HOME``), one folder a digest holding the compiled modules
and a ``manifest.json`` that maps module names to them.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from schemas.config import cache

__all__ = [
    "KERNELS",
    "MANIFEST",
    "MODES",
    "cache_dir",
    "digest",
    "install",
    "loaded_from",
    "source_of",
]

KERNELS = (
    "models.detect.anomaly_kernel",
    "models.forecast.breach",
    "models.forecast.capacity",
    "models.forecast.load_kernel",
    "models.forecast.startup",
    "models.forecast.surges",
    "models.health.region",
    "models.policy.scaling",
)
"""The modules compiled: pure arithmetic on their own state, no class with a metaclass."""

MODES = ("auto", "off")
"""Values of ``AUTOPILOT_NATIVE``: the build when there is one, or always the sources. The
CLI refuses any other (:mod:`streams.runtime.settings`); an import takes it for ``auto``."""

MANIFEST = "manifest.json"
"""The file of a build that maps each module name to its compiled file."""

_ROOT = Path(__file__).resolve().parent.parent
_loaded_from: Path | None = None


def cache_dir() -> Path:
    """Where builds are kept: ``$AUTOPILOT_NATIVE_CACHE`` or the XDG cache."""
    return cache.cache_dir("native")


def source_of(module: str, root: Path = _ROOT) -> Path:
    """The source file of ``module`` under ``root`` (the folder holding ``models``)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(kernels: Sequence[str] = KERNELS, root: Path = _ROOT) -> str:
    """The name of the build of ``kernels`` as found under ``root``, for this interpreter.

    >>> len(digest()), digest() == digest()
    (64, True)
    """
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}".encode())
    for module in kernels:
        h.update(f"\0{module}\0".encode())
        h.update(source_of(module, root).read_bytes())
    return h.hexdigest()


class _CompiledLoader(importlib.machinery.ExtensionFileLoader):
    """Loads a compiled kernel, and names its source as its ``__file__``, as mypyc's
    tracebacks do: doctests and ``inspect`` find the source the module was compiled from
    (``__spec__.origin`` names the compiled file)."""

    def exec_module(self, module: ModuleType) -> None:
        super().exec_module(module)
        # A kernel imported by another is made by the build's shared library, not by this
        # loader: each is renamed once its importer is loaded.
        for name in KERNELS:
            kernel = sys.modules.get(name)
            if kernel is not None and not kernel.__file__.endswith(".py"):
                kernel.__file__ = str(source_of(name))


class _BuildFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of one build's manifest in its folder, and nothing else."""

    def __init__(self, folder: Path, files: dict[str, str]) -> None:
        self.folder = folder
        self.files = files

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        origin = str(self.folder / file)
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_CompiledLoader(fullname, origin)
        )


def install(folder: Path | None = None) -> Path | None:
    """Load the kernels from the build of their sources from now on; return its folder, or
    ``None`` (plain Python) when there is none or ``AUTOPILOT_NATIVE=off``."""
    global _loaded_from
    if os.environ.get("AUTOPILOT_NATIVE", "auto") == "off":
        return None
    folder = cache_dir() / digest() if folder is None else folder
    try:
        files = json.loads((folder / MANIFEST).read_text())["modules"]
    except (OSError, ValueError, KeyError):
        return None
    sys.meta_path.insert(0, _BuildFinder(folder, files))
    _loaded_from = folder
    return folder


def loaded_from() -> Path | None:
    """The build the kernels were loaded from, or ``None`` if they run as plain Python.

    Says where they come from once imported: a kernel imported before :func:`install` stays
    as it was.
    """
    if _loaded_from is None:
        return None
    compiled = all(
        not isinstance(sys.modules[m].__spec__.loader, importlib.machinery.SourceFileLoader)
        for m in KERNELS
        if m in sys.modules
    )
    return _loaded_from if compiled else None

"""Where fetched and built artefacts are kept: the broker's jars, the OpenTelemetry
Collector and the models' compiled kernels.

Each kind has its folder, ``$AUTOPILOT_<KIND>_CACHE`` if set, else
``$XDG_CACHE_HOME/paas-autopilot/<kind>`` (``~/.cache`` without ``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(kind: str) -> Path:
    """The folder of ``kind``'s artefacts (``kafka``, ``otelcol``, ``native``).

    >>> import os
    >>> os.environ["AUTOPILOT_KAFKA_CACHE"] = "/srv/jars"
    >>> cache_dir("kafka")
    PosixPath('/srv/jars')
    >>> del os.environ["AUTOPILOT_KAFKA_CACHE"]
    >>> os.environ["XDG_CACHE_HOME"] = "/var/cache/ci"
    >>> cache_dir("kafka")
    PosixPath('/var/cache/ci/paas-autopilot/kafka')
    >>> del os.environ["XDG_CACHE_HOME"]
    """
    if env := os.environ.get(f"AUTOPILOT_{kind.upper()}_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "paas-autopilot" / kind

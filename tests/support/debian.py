"""Install a Debian package a test needs (kcat, prometheus) when it is missing."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

_updated = False
# The broker tests run in two pytest processes: they take turns with apt-get, which
# refuses to run while another holds the dpkg lock.
_LOCK = "/tmp/autopilot-tests-apt.lock"


def ensure_debian_package(command: str, package: str | None = None) -> str:
    """Return the path of ``command``, installing ``package`` with apt-get if needed.

    Tests that need a real tool install it rather than skip; without root the
    failure says exactly what to install.
    """
    if found := shutil.which(command):
        return found
    package = package or command
    if os.geteuid() != 0:
        raise AssertionError(f"{command} is missing: run `sudo apt-get install {package}`")
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return shutil.which(command) or _install(command, package)


def _install(command: str, package: str) -> str:
    global _updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        _updated = True
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = shutil.which(command)
    if found is None:
        raise AssertionError(f"apt-get install {package} failed: {result.stderr[-500:]}")
    return found

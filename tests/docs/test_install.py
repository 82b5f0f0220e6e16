"""``make run`` and ``make test`` install the checkout; that must print nothing alarming."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_editable_install_prints_no_warning(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip"]
    # As the Makefile installs (with the latest pip, which shows build backends' warnings),
    # without the dependencies: this venv runs nothing.
    upgrade = [*pip, "install", "--quiet", "--upgrade", "pip"]
    assert subprocess.run(upgrade, capture_output=True, timeout=300, check=False).returncode == 0
    run = subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "-e", str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Warning" not in run.stderr and "****" not in run.stderr, run.stderr[-3000:]
    installed = subprocess.run(
        [*pip, "show", "--files", "paas-autopilot"], capture_output=True, text=True, check=False
    )
    assert "__editable__.paas_autopilot" in installed.stdout

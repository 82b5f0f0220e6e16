"""``make run`` and ``make test`` install the checkout; that must print nothing alarming."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGINS = [
    (ROOT / "examples/plugins/river_hst", "autopilot-river-hst"),
    (ROOT / "examples/plugins/webhook_action", "autopilot-webhook-action"),
]


def test_the_editable_install_prints_no_warning(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip"]
    # As the Makefile installs (with the latest pip, which shows build backends' warnings),
    # without the dependencies: this venv runs nothing.
    upgrade = [*pip, "install", "--quiet", "--upgrade", "pip"]
    assert subprocess.run(upgrade, capture_output=True, timeout=300, check=False).returncode == 0
    # The example plugins too: make test installs them beside the checkout.
    for path, name in [(ROOT, "paas-autopilot"), *EXAMPLE_PLUGINS]:
        run = subprocess.run(
            [*pip, "install", "--quiet", "--no-deps", "-e", str(path)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Warning" not in run.stderr and "****" not in run.stderr, run.stderr[-3000:]
        installed = subprocess.run(
            [*pip, "show", "--files", name], capture_output=True, text=True, check=False
        )
        assert f"__editable__.{name.replace('-', '_')}" in installed.stdout

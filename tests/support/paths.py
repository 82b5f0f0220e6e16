"""Files of the checkout that tests read."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "grafana" / "dashboards"
SHARED_DATA = ROOT.parent / "shared" / "data"
"""The public development data beside the checkout (``../shared/data``); may be absent."""

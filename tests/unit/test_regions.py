"""Region configuration: the bundled default, residency rules, errors naming line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config.regions import (
    DEFAULT_REGION_CONFIG_PATH,
    Region,
    RegionConfig,
    RegionConfigError,
    load_region_config,
    parse_region_config,
)
from streams.lab.simulator import DEFAULT_REGIONS

GOOD = """\
[regions.us-east]
jurisdiction = "US"
headroom = 0.4
cost = 1.0

[regions.eu-west]
jurisdiction = "EU"
headroom = 0.35
cost = 1.1

[regions.eu-central]
jurisdiction = "EU"
headroom = 0.2
cost = 1.2

[latency_ms.us-east]
eu-west = 75
eu-central = 90

[latency_ms.eu-west]
eu-central = 20
us-east = 80

[residency]
default = ["*"]
eu-personal = ["EU"]
us-health = ["US"]
"""


def test_default_config_describes_the_simulated_regions() -> None:
    config = load_region_config()
    assert set(config.names) == set(DEFAULT_REGIONS)
    assert config.source == str(DEFAULT_REGION_CONFIG_PATH)
    assert config.regions["eu-west"].jurisdiction == "EU"
    # eu-west is the only EU region: eu-personal traffic has nowhere else to go.
    assert [r for r in config.names if config.allows("eu-personal", r)] == ["eu-west"]
    assert all(config.allows("default", r) for r in config.names)
    for a in config.names:
        for b in config.names:
            assert config.latency(a, b) == config.latency(b, a) >= 0


def test_latency_one_direction_serves_both_unless_both_given() -> None:
    config = parse_region_config(GOOD)
    assert config.latency("eu-central", "us-east") == 90.0
    assert config.latency("us-east", "eu-west") == 75.0
    assert config.latency("eu-west", "us-east") == 80.0
    assert config.latency("eu-west", "eu-west") == 0.0


def test_residency_rules_and_the_default_rule() -> None:
    config = parse_region_config(GOOD)
    assert config.allowed_jurisdictions("eu-personal") == frozenset({"EU"})
    assert config.allows("eu-personal", "eu-central")
    assert not config.allows("eu-personal", "us-east")
    assert not config.allows("us-health", "eu-west")
    # An unlisted class follows the default rule; an unknown region is never allowed.
    assert config.allows("telemetry", "us-east")
    assert not config.allows("default", "mars")


def test_without_a_default_rule_unlisted_classes_go_nowhere() -> None:
    config = RegionConfig(
        regions={"eu-west": Region("eu-west", "EU", 0.5, 1.0)},
        latency_ms={},
        residency={"eu-personal": frozenset({"EU"})},
    )
    assert config.allows("eu-personal", "eu-west")
    assert not config.allows("telemetry", "eu-west")


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "line_of", "field", "message"),
    [
        (
            "headroom = 0.35",
            "headroom = 1.5",
            "headroom = 1.5",
            "regions.eu-west.headroom",
            "must be in [0, 1], got 1.5",
        ),
        (
            "headroom = 0.2",
            "headroom = -0.1",
            "headroom = -0.1",
            "regions.eu-central.headroom",
            "must be in [0, 1]",
        ),
        ("cost = 1.2", "cost = 0", "cost = 0", "regions.eu-central.cost", "must be > 0"),
        (
            'eu-personal = ["EU"]',
            'eu-personal = ["EU", "EUR"]',
            "eu-personal",
            "residency.eu-personal[1]",
            "unknown jurisdiction 'EUR'",
        ),
        (
            "eu-central = 20\n",
            "",
            "[latency_ms.eu-west]",
            "latency_ms.eu-west.eu-central",
            "is missing",
        ),
        (
            'jurisdiction = "US"\n',
            "",
            "[regions.us-east]",
            "regions.us-east.jurisdiction",
            "is required",
        ),
        (
            "cost = 1.1",
            "cost = 1.1\nprice = 2",
            "price = 2",
            "regions.eu-west.price",
            "unknown key",
        ),
        ("cost = 1.1", 'cost = "cheap"', 'cost = "cheap"', "regions.eu-west.cost", "a number"),
        (
            'default = ["*"]\n',
            "",
            "[residency]",
            "residency.default",
            "is required",
        ),
        ("eu-west = 75", "eu-west = -5", "eu-west = -5", "latency_ms.us-east.eu-west", ">= 0"),
        ("eu-west = 75", "mars = 75", "mars = 75", "latency_ms.us-east.mars", "not a configured"),
        ('us-health = ["US"]', "us-health = []", "us-health", "residency.us-health", "non-empty"),
        ("cost = 1.1", "cost = 1.1.1", "cost = 1.1.1", "regions.eu-west.cost", "invalid TOML"),
        ("cost = 1.2", "cost = # tbd", "# tbd", "regions.eu-central.cost", "invalid TOML"),
    ],
)
def test_errors_name_the_line_and_the_field(
    old: str, new: str, line_of: str, field: str, message: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(RegionConfigError) as info:
        parse_region_config(text, source="regions.toml")
    error = str(info.value)
    assert error.startswith(f"regions.toml:{_line_of(text, line_of)}: {field}: "), error
    assert message in error


def test_inline_tables_are_located_too() -> None:
    text = GOOD.replace("[latency_ms.eu-west]\neu-central = 20\nus-east = 80\n", "").replace(
        "[latency_ms.us-east]\neu-west = 75\neu-central = 90\n",
        '[latency_ms]\nus-east = { eu-west = 75, eu-central = "far" }\n',
    )
    with pytest.raises(RegionConfigError, match=r"^<string>:17: latency_ms\.us-east\.eu-central: "):
        parse_region_config(text)


def test_from_dict_names_the_field_without_a_line() -> None:
    with pytest.raises(RegionConfigError, match=r"^cfg: regions: is required"):
        RegionConfig.from_dict({"residency": {"default": ["*"]}}, source="cfg")


def test_load_region_config_reads_files_and_reports_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "regions.toml"
    path.write_text(GOOD)
    assert load_region_config(path).names == ("eu-central", "eu-west", "us-east")
    path.write_text(GOOD.replace("cost = 1.0", "cost = -1"))
    with pytest.raises(RegionConfigError, match=rf"^{path}:4: regions\.us-east\.cost: "):
        load_region_config(str(path))
    with pytest.raises(RegionConfigError, match="no such region configuration file"):
        load_region_config(tmp_path / "missing.toml")

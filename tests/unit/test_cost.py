"""The cost engine: prices, month-end forecast, budgets, rightsizing and spot, by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from models.brains.cost import CostBrain
from models.policy.cost import CostTracker, month_bounds, rightsize
from schemas import MetricSample
from schemas.config.budgets import Budgets, BudgetsError, load_budgets
from schemas.config.prices import PriceTableError, load_price_table
from streams.runtime.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
PRICES = load_price_table(ROOT / "streams" / "config" / "prices.toml")
JAN = 1_704_067_200.0  # 2024-01-01 00:00 UTC
HOUR = 3600.0


def samples(service, region, hours, *, cpu, mem, replicas=10, start=JAN, every=60.0, seed=0):
    """A sample a minute with a little noise around the given utilisation."""
    rng = np.random.default_rng(seed)
    for i in range(int(hours * HOUR / every)):
        yield MetricSample(
            start + i * every,
            region,
            service,
            {
                "replicas": replicas,
                "cpu_util": float(np.clip(cpu + rng.normal(0, 0.03), 0, 1)),
                "mem_util": float(np.clip(mem + rng.normal(0, 0.02), 0, 1)),
                "rps": 100.0,
            },
        )


def run(brain, stream):
    return [d for s in stream for d in brain.observe(s)]


# ------------------------------------------------------------------------- rightsizing
def test_the_example_price_table_loads():
    assert PRICES.instance_for("checkout").name == "m6i.xlarge"
    assert PRICES.instance_for("unknown-service").name == "m6i.large"
    assert PRICES.replica_hourly("checkout", "eu-west") == pytest.approx(0.192 * 1.1)
    assert {t.family for t in PRICES.instance_types.values()} == {"compute", "memory", "general"}
    budgets = load_budgets(ROOT / "streams" / "config" / "budgets.toml")
    assert budgets.total == 8000.0 and budgets.services == {"checkout": 1200.0}


def test_a_cpu_bound_service_moves_to_compute_optimised():
    m6i = PRICES.instance_types["m6i.xlarge"]
    advice = rightsize(PRICES, m6i, cpu_util=0.6, mem_util=0.2, replicas=10, region_multiplier=1.1)
    assert (advice.reason, advice.target.name, advice.target.family) == (
        "cpu_bound",
        "c6i.xlarge",
        "compute",
    )
    # By hand: (0.192 - 0.170) USD/h x 1.1 x 10 replicas x 730 h = 0.022 x 8030 = 176.66
    assert advice.monthly_saving_usd == pytest.approx(176.66)
    assert advice.arithmetic == (
        "(0.192 - 0.17) USD/h x 1.1 x 10 replicas x 730 h = 176.66 USD/month"
    )


def test_a_memory_bound_service_moves_to_memory_optimised():
    m6i = PRICES.instance_types["m6i.xlarge"]
    advice = rightsize(PRICES, m6i, cpu_util=0.2, mem_util=0.7, replicas=10)
    # Needs 0.2 x 4 / 0.75 = 1.07 vCPU and 0.7 x 16 / 0.8 = 14 GiB: r6i.large (2, 16) fits.
    assert (advice.reason, advice.target.name, advice.target.family) == (
        "memory_bound",
        "r6i.large",
        "memory",
    )
    # (0.192 - 0.126) x 1.0 x 10 x 730 = 0.066 x 7300 = 481.80
    assert advice.monthly_saving_usd == pytest.approx(481.80)


def test_an_over_provisioned_service_gets_a_smaller_size_of_its_family():
    m6i = PRICES.instance_types["m6i.xlarge"]
    advice = rightsize(PRICES, m6i, cpu_util=0.15, mem_util=0.15, replicas=4)
    assert (advice.reason, advice.target.name) == ("over_provisioned", "m6i.large")
    # (0.192 - 0.096) x 4 x 730 = 280.32
    assert advice.monthly_saving_usd == pytest.approx(280.32)


@pytest.mark.parametrize(("cpu", "mem"), [(0.6, 0.55), (0.45, 0.45), (0.8, 0.7), (0.6, 0.45)])
def test_a_well_sized_service_gets_nothing(cpu, mem):
    m6i = PRICES.instance_types["m6i.xlarge"]
    assert rightsize(PRICES, m6i, cpu_util=cpu, mem_util=mem, replicas=10) is None


def test_a_cpu_bound_service_already_on_compute_stays():
    c6i = PRICES.instance_types["c6i.xlarge"]
    assert rightsize(PRICES, c6i, cpu_util=0.6, mem_util=0.2, replicas=10) is None


def test_simulated_services_get_the_right_recommendations_from_the_brain():
    brain = CostBrain(PRICES)
    cpu_bound = run(brain, samples("checkout", "eu-west", 8, cpu=0.6, mem=0.2))
    memory_bound = run(brain, samples("checkout", "us-east", 8, cpu=0.2, mem=0.7, seed=1))
    well_sized = run(brain, samples("checkout", "ap-south", 8, cpu=0.6, mem=0.55, seed=2))
    [d] = cpu_bound
    assert (d.kind, d.action, d.mode, d.params) == (
        "rightsize",
        "change_instance_type",
        "recommend",
        {"from": "m6i.xlarge", "to": "c6i.xlarge"},
    )
    assert d.subject == {"service": "checkout", "region": "eu-west"}
    assert d.evidence["monthly_saving_usd"] == pytest.approx(176.66)
    assert d.evidence["reason"] == "cpu_bound"
    # Only after six hours of telemetry.
    assert d.ts - JAN >= 6 * HOUR
    [m] = memory_bound
    assert m.params["to"] == "r6i.large"
    assert m.evidence["monthly_saving_usd"] == pytest.approx(481.80)
    assert well_sized == []


# -------------------------------------------------------------------------------- spot
def test_spot_only_for_stateless_interruption_tolerant_services():
    brain = CostBrain(PRICES)
    spot = run(brain, samples("search", "eu-west", 7, cpu=0.6, mem=0.55, replicas=6))
    assert run(brain, samples("checkout", "eu-west", 7, cpu=0.6, mem=0.55)) == []
    [d] = spot
    assert (d.kind, d.action, d.params["instance_type"]) == ("rightsize", "use_spot", "m6i.xlarge")
    # 0.192 USD/h x 1.1 x 6 replicas x 730 h = 925.06 on demand; x 0.6 discount = 555.03
    assert d.evidence["on_demand_monthly_usd"] == pytest.approx(925.06)
    assert d.evidence["monthly_saving_usd"] == pytest.approx(555.03)


# ------------------------------------------------------------------ forecast and budget
def test_month_bounds_follow_the_utc_calendar():
    assert month_bounds(JAN) == (JAN, JAN + 31 * 86_400)
    feb_start, feb_end = month_bounds(JAN + 31 * 86_400 + 1)
    assert (feb_end - feb_start) / 86_400 == 29  # 2024 is a leap year
    dec = month_bounds(JAN - 1)
    assert dec[1] == JAN


def test_month_end_forecast_by_hand():
    t = CostTracker()
    for i in range(10 * 24 * 60 + 1):  # 1.92 USD/h (10 m6i.xlarge in us-east) for ten days
        t.learn_one(JAN + 60.0 * i, 1.92)
    f = t.forecast(JAN + 10 * 86_400)
    # Observed: 240 h x 1.92 = 460.80; then 21 days x 24 h x 1.92 = 967.68; in all 1428.48.
    assert f.observed_usd == pytest.approx(460.80)
    assert f.forecast_usd == pytest.approx(1428.48)
    assert f.to_dict()["month"] == "2024-01"


def test_a_tracker_started_mid_month_estimates_the_part_it_did_not_see():
    t = CostTracker()
    start = JAN + 10 * 86_400
    for i in range(24 * 60 + 1):
        t.learn_one(start + 60.0 * i, 1.92)
    f = t.forecast(start + 86_400)
    assert f.observed_usd == pytest.approx(24 * 1.92)
    assert f.cost_now_usd == pytest.approx(11 * 24 * 1.92)
    assert f.forecast_usd == pytest.approx(31 * 24 * 1.92)


def test_a_gap_in_telemetry_is_estimated_at_the_run_rate_and_a_gone_series_stops():
    t = CostTracker(max_gap_s=600.0)
    for i in range(121):
        t.learn_one(JAN + 60.0 * i, 2.0)
    for i in range(121):
        t.learn_one(JAN + 5 * HOUR + 60.0 * i, 2.0)  # three hours without telemetry
    f = t.forecast(JAN + 7 * HOUR)
    assert f.observed_usd == pytest.approx(2.0 * 4 + 2.0 * 600 / 3600)
    assert f.cost_now_usd == pytest.approx(14.0)
    # Silent for a day: it no longer runs, its cost stays what it was.
    gone = t.forecast(JAN + 31 * HOUR)
    assert gone.run_rate_usd_per_hour == 0.0
    assert gone.forecast_usd == pytest.approx(14.0)


def test_a_budget_decision_with_its_crossing_date():
    brain = CostBrain(PRICES, Budgets(total=1200.0, services={"search": 10_000.0}))
    decisions = run(
        brain, samples("checkout", "us-east", 24, cpu=0.6, mem=0.55, replicas=10, every=300.0)
    )
    [d] = [d for d in decisions if d.kind == "budget"]
    # 10 x 0.192 = 1.92 USD/h: 1428.48 for January; 1200 is reached after 625 h, on
    # 2024-01-27 at 01:00 UTC.
    assert d.subject == {}
    assert (d.action, d.mode, d.params) == (
        "budget_alert",
        "recommend",
        {"budget_usd": 1200.0, "month": "2024-01"},
    )
    assert d.evidence["forecast_usd"] == pytest.approx(1428.48)
    assert d.evidence["crossing_ts"] == pytest.approx(JAN + 625 * HOUR, abs=1.0)
    assert d.evidence["crossing_date"] == "2024-01-27"
    assert "2024-01-27 01:00 UTC" in d.reason
    assert d.evidence["top_series"] == [
        {"service": "checkout", "region": "us-east", "forecast_usd": 1428.48}
    ]
    assert d.topic == "decisions.scaling"


def test_a_budget_fires_once_a_month_per_scope_and_sums_its_series():
    brain = CostBrain(PRICES, Budgets(services={"checkout": 2000.0}))
    stream = []
    for region in ("us-east", "eu-west"):
        stream += list(samples("checkout", region, 2, cpu=0.6, mem=0.55, every=300.0))
    stream.sort(key=lambda s: s.ts)
    decisions = [d for d in run(brain, stream) if d.kind == "budget"]
    # Each region alone forecasts 1428.48 or 1571.33, under 2000; together 2999.81.
    assert [d.subject for d in decisions] == [{"service": "checkout"}]
    assert decisions[0].evidence["forecast_usd"] == pytest.approx(1428.48 + 1571.328, abs=0.01)
    assert [d for d in run(brain, stream[-1:]) if d.kind == "budget"] == []
    # The next month is a new budget.
    feb = JAN + 31 * 86_400
    stream = []
    for region in ("us-east", "eu-west"):
        stream += list(samples("checkout", region, 1, cpu=0.6, mem=0.55, start=feb))
    stream.sort(key=lambda s: s.ts)
    later = run(brain, stream)
    assert [d.params["month"] for d in later if d.kind == "budget"] == ["2024-02"]


def test_state_round_trip_does_not_repeat_decisions():
    brain = CostBrain(PRICES, Budgets(total=100.0))
    first = run(brain, samples("checkout", "eu-west", 7, cpu=0.6, mem=0.2))
    assert sorted(d.kind for d in first) == ["budget", "rightsize"]
    state = orjson.loads(orjson.dumps(brain.to_state()))
    restored = CostBrain.from_state(state, PRICES, Budgets(total=100.0))
    more = list(samples("checkout", "eu-west", 1, cpu=0.6, mem=0.2, start=JAN + 7 * HOUR))
    assert run(restored, more) == run(brain, more) == []
    assert restored.forecast("checkout", "eu-west") == brain.forecast("checkout", "eu-west")
    assert restored.cost_per_hour("checkout", "eu-west") == pytest.approx(10 * 0.192 * 1.1)


def test_memory_is_bounded():
    brain = CostBrain(PRICES, max_series=2, ttl_s=HOUR)
    for n, region in enumerate(("us-east", "eu-west", "ap-south")):
        brain.observe(MetricSample(JAN + n, region, "catalog", {"replicas": 2}))
    assert list(brain) == [("catalog", "eu-west"), ("catalog", "ap-south")]
    brain.observe(MetricSample(JAN + 2 * HOUR, "ap-south", "catalog", {"replicas": 2}))
    assert brain.evict_idle(JAN + 2 * HOUR) == 1


def test_a_bad_price_table_names_the_line_and_the_field(tmp_path):
    bad = tmp_path / "prices.toml"
    bad.write_text('[defaults]\ninstance_type = "x"\n')
    with pytest.raises(
        PriceTableError, match=r":2: defaults\.instance_type: unknown instance type"
    ):
        load_price_table(bad)
    bad.write_text(
        '[defaults]\ninstance_type = "x"\n[instance_types.x]\nfamily = "gpu"\nvcpu = 1\n'
        "memory_gib = 1\nhourly_usd = 1\n"
    )
    with pytest.raises(PriceTableError, match=r":4: instance_types\.x\.family: must be one of"):
        load_price_table(bad)
    bad.write_text('[defaults]\ninstance_type = "x"\n[instance_types.x]\nfamily = "compute"\n')
    with pytest.raises(PriceTableError, match=r":3: instance_types\.x\.vcpu: is required"):
        load_price_table(bad)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # A number in quotes, a yes/no in quotes, a misspelt key: each once passed silently
        # (the string "false" was true, the misspelt discount was 0).
        ("vcpu = 2", 'vcpu = "2"', r":\d+: instance_types\.\"m6i\.large\"\.vcpu: must be a number"),
        (
            "stateless = false",
            'stateless = "false"',
            r"services\.checkout\.stateless: must be true",
        ),
        ("spot_discount = 0.55", "spot_discont = 0.55", r"\.spot_discont: unknown key"),
        ("spot_discount = 0.55", "spot_discount = 1.0", r"spot_discount: must be in \[0, 1\)"),
        ("eu-west = 1.1", "eu-west = 0", r"regions\.eu-west: must be > 0, got 0"),
    ],
)
def test_a_price_table_field_of_the_wrong_type_is_refused(tmp_path, old, new, error):
    text = (ROOT / "streams" / "config" / "prices.toml").read_text()
    assert old in text
    bad = tmp_path / "prices.toml"
    bad.write_text(text.replace(old, new, 1))
    line = text.replace(old, new, 1)[: text.index(old)].count("\n") + 1
    with pytest.raises(PriceTableError, match=error) as caught:
        load_price_table(bad)
    assert str(caught.value).startswith(f"{bad}:{line}: "), caught.value


def test_bad_budgets_name_the_line_and_the_field(tmp_path):
    bad = tmp_path / "budgets.toml"
    bad.write_text('[budget]\ntotal_usd = 100\n[budget.services]\ncheckout = "1200"\n')
    with pytest.raises(BudgetsError) as caught:
        load_budgets(bad)
    assert str(caught.value) == (
        f"{bad}:4: budget.services.checkout: must be a number, got the string '1200'"
    )
    bad.write_text("[budget]\ntotal = 100\n")
    with pytest.raises(BudgetsError, match=r":2: budget\.total: unknown key"):
        load_budgets(bad)
    with pytest.raises(BudgetsError, match="no such budgets file"):
        load_budgets(tmp_path / "missing.toml")


def test_a_bad_price_table_stops_the_worker_at_start_up(tmp_path):
    bad = tmp_path / "prices.toml"
    bad.write_text('[defaults]\ninstance_type = "x"\n')
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"AUTOPILOT_PRICES": str(bad)})
    assert str(caught.value) == (
        f"AUTOPILOT_PRICES: {bad}:2: defaults.instance_type: unknown instance type 'x' "
        "(instance_types has: none)"
    )

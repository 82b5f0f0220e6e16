"""Does the usage-pattern prior make the load forecast better? A bench on the simulator.

The simulator (:mod:`streams.lab.simulator`) runs one service in one region for
``learn_days + eval_days`` days of event time, in back-to-back runs of half a day (a run is
at most 23 h). Its interactions during the first ``learn_days`` teach a
:class:`~models.forecast.usage.UsageModel`; its ``rps`` metric during the following ``eval_days`` is
the demand trace. The forecaster never sees the future: the prior is learned from events
before the evaluation starts, and the forecaster learns the trace as it is replayed.

Two situations are compared, each without and with the prior
(:meth:`~models.forecast.load.LoadForecaster.set_prior`):

* **cold**: a forecaster that starts with the evaluation (a new series, or one restored
  without state), scored by :func:`streams.lab.bench.scaling.simulate` exactly as ``autopilot bench
  scaling`` scores it (MAPE of the forecast at the start-up horizon), with its violation
  minutes and replica-hours;
* **warm**: a forecaster that has also learned the ``learn_days`` of demand before the
  evaluation, the prior attached when the evaluation starts, scored over the evaluation.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np
import orjson

from models.forecast.load import LoadForecaster
from models.forecast.usage import UsageModel
from models.policy.autoscalers import PREDICTIVE_CONFIG
from streams.lab.bench.scaling import capacity_for_trace, simulate
from streams.lab.simulator import SimConfig, generate

__all__ = ["MONDAY", "format_bench_usage_prior", "run_bench_usage_prior", "simulated_history"]

MONDAY = 1_704_067_200.0
"""Monday 2024-01-01 00:00 UTC: the default start, so that weeks start on Mondays."""
_RUN_S = 43_200.0

Trace = list[tuple[float, float]]


def simulated_history(
    *,
    service: str = "catalog",
    region: str = "eu-west",
    days: float,
    start_ts: float = MONDAY,
    seed: int = 0,
    tick_s: float = 60.0,
    tenants: int = 10,
    interactions_per_s: float = 1.0,
    usage: UsageModel | None = None,
    learn_until: float = math.inf,
) -> Trace:
    """The simulator's ``rps`` of one (service, region) over ``days``, as ``(ts, rps)``.

    Interactions before ``learn_until`` are counted into the (service, region) profiles of
    ``usage``, the ones the prior comes from.
    """
    trace: Trace = []
    runs = math.ceil(days * 86_400.0 / _RUN_S - 1e-9)
    for k in range(runs):
        config = SimConfig(
            services=(service,),
            regions=(region,),
            tenants=tenants,
            tick_s=tick_s,
            duration_s=_RUN_S,
            start_ts=start_ts + k * _RUN_S,
            seed=seed + k,
            errors_per_s=0.0,
            interactions_per_s=interactions_per_s,
        )
        for attr, _, value, ts in generate(config):
            if attr == "metrics":
                trace.append((ts, orjson.loads(value)["metrics"]["rps"]))
            elif attr == "interactions" and usage is not None and ts < learn_until:
                body = orjson.loads(value)
                usage.learn_series(ts, body["service"], body["region"])
    return trace


def _warm_mape(
    trace: Trace,
    eval_start: float,
    prior: Sequence[float] | None,
    *,
    horizon_s: float,
    step_s: float = 15.0,
) -> float | None:
    """MAPE of the forecast at ``horizon_s`` over the targets after ``eval_start``.

    The same grid and measure as :func:`streams.lab.bench.scaling.simulate`; the prior is attached
    when the replay reaches ``eval_start``.
    """
    ts_raw = np.array([t for t, _ in trace])
    val_raw = np.array([v for _, v in trace])
    grid = np.arange(ts_raw[0], ts_raw[-1] + 1e-9, step_s)
    demand = np.maximum(np.interp(grid, ts_raw, val_raw), 0.0)
    forecaster = LoadForecaster(interval=PREDICTIVE_CONFIG["interval"])
    attached = False
    targets, means = [], []
    for t, d in zip(grid.tolist(), demand.tolist(), strict=True):
        if not attached and t >= eval_start:
            forecaster.set_prior(prior)
            attached = True
        forecaster.update(t, d)
        if t >= eval_start:
            targets.append(t + horizon_s)
            means.append(forecaster.forecast_at(t, horizon_s).mean)
    target_arr, mean_arr = np.array(targets), np.array(means)
    inside = target_arr <= ts_raw[-1]
    actual = np.interp(target_arr[inside], ts_raw, val_raw)
    ok = actual > 0
    if not ok.any():
        return None
    err = np.abs(mean_arr[inside][ok] - actual[ok]) / actual[ok]
    return float(np.mean(err) * 100.0)


def run_bench_usage_prior(
    *,
    service: str = "catalog",
    region: str = "eu-west",
    learn_days: float = 14.0,
    eval_days: float = 7.0,
    start_ts: float = MONDAY,
    seed: int = 0,
    tick_s: float = 60.0,
    tenants: int = 10,
    interactions_per_s: float = 1.0,
    startup_delay_s: float = 180.0,
    trace_path: str | os.PathLike | None = None,
    warm: bool = True,
) -> dict:
    """Forecast MAPE at the start-up horizon without and with the usage-pattern prior.

    Parameters
    ----------
    service, region
        The simulated series.
    learn_days
        Days of interactions the usage profile learns from (two weeks see every hour of
        the week twice).
    eval_days
        Days of demand the forecasts are scored on, right after.
    start_ts, seed, tick_s, tenants, interactions_per_s
        Simulator settings.
    startup_delay_s
        The forecast horizon, as in ``autopilot bench scaling``.
    trace_path
        If given, the evaluation trace is written there as a ``timestamp,value`` CSV, for
        ``autopilot bench scaling --trace`` with the returned ``prior``.
    warm
        Whether to run the warm comparison too (it replays the whole history twice).

    Returns
    -------
    dict
        ``config``; ``cold`` and ``warm`` (``None`` unless asked for), each with
        ``mape_without``, ``mape_with`` (per cent) and ``ratio`` (with / without), ``cold``
        also with the violation minutes and replica-hours of both runs; ``prior_helps``
        (the prior lowers the cold MAPE); ``prior`` (the 168 values).
    """
    usage = UsageModel()
    eval_start = start_ts + learn_days * 86_400.0
    trace = simulated_history(
        service=service,
        region=region,
        days=learn_days + eval_days,
        start_ts=start_ts,
        seed=seed,
        tick_s=tick_s,
        tenants=tenants,
        interactions_per_s=interactions_per_s,
        usage=usage,
        learn_until=eval_start,
    )
    prior = usage.prior_for(service, region)
    if prior is None:
        raise ValueError("the usage profile needs at least a week of interactions")
    evaluation = [(t, v) for t, v in trace if t >= eval_start]
    if trace_path is not None:
        with open(trace_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value"])
            writer.writerows(evaluation)
    capacity = capacity_for_trace(evaluation)
    runs = {
        name: simulate(
            evaluation,
            "predictive",
            startup_delay_s=startup_delay_s,
            capacity_per_replica=capacity,
            prior=p,
        )
        for name, p in (("without", None), ("with", prior))
    }
    cold = {
        "mape_without": runs["without"].forecast_mape,
        "mape_with": runs["with"].forecast_mape,
        "violation_minutes_without": runs["without"].violation_minutes,
        "violation_minutes_with": runs["with"].violation_minutes,
        "replica_hours_without": runs["without"].replica_hours,
        "replica_hours_with": runs["with"].replica_hours,
    }
    parts = [cold]
    warm_part = None
    if warm:
        warm_part = {
            "mape_without": _warm_mape(trace, eval_start, None, horizon_s=startup_delay_s),
            "mape_with": _warm_mape(trace, eval_start, prior, horizon_s=startup_delay_s),
        }
        parts.append(warm_part)
    for part in parts:
        without, with_ = part["mape_without"], part["mape_with"]
        part["ratio"] = with_ / without if without and with_ is not None else None
    return {
        "config": {
            "service": service,
            "region": region,
            "learn_days": learn_days,
            "eval_days": eval_days,
            "start_ts": start_ts,
            "seed": seed,
            "tick_s": tick_s,
            "tenants": tenants,
            "interactions_per_s": interactions_per_s,
            "startup_delay_s": startup_delay_s,
        },
        "cold": cold,
        "warm": warm_part,
        "prior_helps": (
            cold["mape_with"] is not None
            and cold["mape_without"] is not None
            and cold["mape_with"] < cold["mape_without"]
        ),
        "prior": prior,
    }


def format_bench_usage_prior(result: dict) -> str:
    """Readable summary of :func:`run_bench_usage_prior`'s result.

    >>> r = {"config": {"service": "api", "region": "eu-west", "learn_days": 14,
    ...      "eval_days": 7, "startup_delay_s": 180},
    ...      "cold": {"mape_without": 9.0, "mape_with": 6.0, "ratio": 2 / 3},
    ...      "warm": {"mape_without": 5.0, "mape_with": 4.5, "ratio": 0.9},
    ...      "prior_helps": True}
    >>> print(format_bench_usage_prior(r))
    Usage-pattern prior for api in eu-west: learned from 14 days of interactions,
    forecasts 180 s ahead scored over the next 7 days
                       MAPE % without   MAPE % with   with/without
      cold forecaster             9.0           6.0           0.67
      warm forecaster             5.0           4.5           0.90
    prior lowers the cold forecaster's MAPE: yes
    """
    cfg = result["config"]

    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    def days(n: float) -> str:
        return f"{n:g} day" + ("" if n == 1 else "s")

    lines = [
        f"Usage-pattern prior for {cfg['service']} in {cfg['region']}: learned from "
        f"{days(cfg['learn_days'])} of interactions,",
        f"forecasts {cfg['startup_delay_s']:g} s ahead scored over the next "
        f"{days(cfg['eval_days'])}",
        f"  {'':<16}{'MAPE % without':>15}{'MAPE % with':>14}{'with/without':>15}",
    ]
    for name in ("cold", "warm"):
        part = result[name]
        if part is None:
            continue
        lines.append(
            f"  {name + ' forecaster':<16}{num(part['mape_without'], '.1f'):>15}"
            f"{num(part['mape_with'], '.1f'):>14}{num(part['ratio'], '.2f'):>15}"
        )
    lines.append(
        "prior lowers the cold forecaster's MAPE: " + ("yes" if result["prior_helps"] else "NO")
    )
    return "\n".join(lines)

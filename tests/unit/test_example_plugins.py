"""The example plugins (examples/plugins), installed in the test venv by the Makefile.

The river-hst detector on a canned daily cycle, and the webhook action against a local
HTTP server: both found through their entry points, as a worker finds them.
"""

from __future__ import annotations

import http.server
import itertools
import math
import pickle
import random
import socket
import threading
from collections.abc import Iterator

import orjson
import pytest

from models import registry
from models.base import Action, ActionResult
from schemas import Decision
from schemas.decision import decision_id_for
from streams.plugins.admission import admit

DAY = 8640  # values at one every 10 s
SPIKE_AT = DAY + DAY // 2
SHIFT_AT = SPIKE_AT + DAY // 4


@pytest.fixture(scope="module")
def plugins() -> Iterator[None]:
    """The installed plugins registered, in a copy of the registry: they are not left in it
    for the tests and doctests after these (``registry.names`` would list them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "_entries", {g: dict(e) for g, e in registry._entries.items()})
        refused = registry.load_plugins()
        assert not refused, refused
        yield


def canned_stream(seed: int = 1) -> list[float]:
    """Two days of a noisy daily cycle, a 10x spike on day two, then a +150 level shift."""
    rng = random.Random(seed)
    values = [100 + 40 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 5) for i in range(2 * DAY)]
    values[SPIKE_AT] *= 10
    return [v + 150 if i >= SHIFT_AT else v for i, v in enumerate(values)]


def scores_of(detector, values: list[float]) -> list[float]:
    entry = registry.entry("detectors", "river-hst")
    out = []
    for i, value in enumerate(values):
        x = entry.features(10.0 * i, value)
        out.append(detector.score_one(x))
        detector.learn_one(x)
    return out


# --- river-hst -------------------------------------------------------------------------------


def test_river_hst_is_a_plugin_found_by_entry_point(plugins) -> None:
    entry = registry.entry("detectors", "river-hst")
    assert not entry.builtin
    assert entry.capabilities == frozenset()
    assert not entry.event_time
    assert entry.features(60.0, 1.5) == {"value": 1.5}
    assert "river-hst" in registry.names("detectors")


def test_river_hst_flags_the_spike_and_the_shift_but_not_the_cycle(plugins) -> None:
    entry = registry.entry("detectors", "river-hst")
    scores = scores_of(entry.factory(), canned_stream())
    flagged = {i for i, s in enumerate(scores) if i >= entry.warmup and s >= entry.threshold}
    assert SPIKE_AT in flagged
    assert SHIFT_AT in flagged
    # The first hour of the shift is flagged, nearly all of it.
    assert len(flagged & set(range(SHIFT_AT, SHIFT_AT + 360))) > 300
    normal = flagged - {SPIKE_AT} - set(range(SHIFT_AT, 2 * DAY))
    assert len(normal) <= 5, sorted(normal)


def test_river_hst_is_deterministic(plugins) -> None:
    entry = registry.entry("detectors", "river-hst")
    values = canned_stream()[:600]
    first = scores_of(entry.factory(window_size=50), values)
    assert first == scores_of(entry.factory(window_size=50), values)
    assert len(set(first)) > 1


def test_river_hst_state_survives_pickle(plugins) -> None:
    entry = registry.entry("detectors", "river-hst")
    values = canned_stream()
    detector = entry.factory(window_size=200)
    scores_of(detector, values[:1000])
    copy = pickle.loads(pickle.dumps(detector))
    assert scores_of(copy, values[1000:1400]) == scores_of(detector, values[1000:1400])


# --- river-holtwinters ------------------------------------------------------------------------

STEP_S = 60.0  # the plugin's season in a test's time: a day is 1440 values


def forecast_errors(
    forecaster, values: list[float], after: int, ahead: int = 3, start: int = 0
) -> list[float]:
    """Absolute errors of the forecasts ``ahead`` values ahead made from value ``after`` on,
    each checked to be sound; the first value is at ``start`` steps."""
    errors = []
    for i, value in enumerate(values[:-ahead]):
        forecaster.update(STEP_S * (start + i), value)
        if i >= after:
            fc = forecaster.forecast_at(STEP_S * (start + i), ahead * STEP_S)
            assert math.isfinite(fc.mean) and fc.lower <= fc.mean <= fc.upper
            errors.append(abs(fc.mean - values[i + ahead]))
    return errors


def daily_cycle(days: int = 3, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    day = round(86_400 / STEP_S)
    return [100 + 40 * math.sin(2 * math.pi * i / day) + rng.gauss(0, 5) for i in range(days * day)]


def test_river_holtwinters_is_a_plugin_found_by_entry_point(plugins) -> None:
    entry = registry.entry("forecasters", "river-holtwinters")
    assert not entry.builtin and entry.capabilities == frozenset()
    assert entry.warmup == DAY
    assert "river-holtwinters" in registry.names("forecasters")
    verdict = admit(entry, clock=itertools.count(0, 1000).__next__)
    assert verdict.ok, verdict.reason


def test_river_holtwinters_forecasts_a_daily_cycle_as_well_as_the_built_in(plugins) -> None:
    from models.forecast.load import LoadForecaster

    values = daily_cycle()
    day = len(values) // 3
    plugin = forecast_errors(registry.create("forecasters", "river-holtwinters", step_s=STEP_S),
                             values, after=day)  # fmt: skip
    builtin = forecast_errors(LoadForecaster(interval=0.2), values, after=day)
    # Within 10 % of the built-in's mean error after its day of warm-up, and near the noise's
    # own (5 * sqrt(2 / pi), about 4).
    assert sum(plugin) / len(plugin) <= 1.1 * sum(builtin) / len(builtin)
    assert sum(plugin) / len(plugin) < 5.0


def test_river_holtwinters_is_deterministic_and_survives_pickle(plugins) -> None:
    make = registry.entry("forecasters", "river-holtwinters").factory
    values = daily_cycle(days=2)
    first, second = make(step_s=STEP_S), make(step_s=STEP_S)
    assert forecast_errors(first, values[:1600], 0) == forecast_errors(second, values[:1600], 0)
    copy = pickle.loads(pickle.dumps(first))
    rest = values[1600:2000]
    assert forecast_errors(copy, rest, 0, start=1600) == forecast_errors(first, rest, 0, start=1600)


# --- webhook ---------------------------------------------------------------------------------

TOKEN = "T0K3N-s3cret"


class _Hook(http.server.BaseHTTPRequestHandler):
    """Records each POST; answers with the server's ``status`` (and ``location``)."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append((self.path, dict(self.headers), self.rfile.read(length)))
        if self.server.hang.is_set():
            self.server.release.wait(10)
        self.send_response(self.server.status)
        if self.server.status in (301, 302, 307, 308):
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.status = [], 200
    server.hang, server.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/{TOKEN}?sig={TOKEN}"


def _decision() -> dict:
    subject, params = {"service": "checkout", "region": "eu-west-1"}, {"to": 4}
    return Decision(
        kind="scaling",
        subject=subject,
        action="scale_out",
        params=params,
        mode="auto",
        ts=1_700_000_000.0,
        decision_id=decision_id_for("scaling", subject, "scale_out", params, [1.0]),
        confidence=0.9,
        reason="Demand is forecast above what 3 replicas serve.",
        evidence={"forecast_rps": 420.0},
        model_version="test-1",
    ).to_dict()


def test_webhook_posts_the_decision_json(plugins, server) -> None:
    entry = registry.entry("actions", "webhook")
    assert entry.capabilities == frozenset({"network"}) and not entry.builtin
    hook = entry.factory(url=_url(server), headers={"Authorization": f"Bearer {TOKEN}"})
    assert isinstance(hook, Action)
    decision = _decision()
    result = hook.apply(decision)
    assert result == ActionResult(
        True, f"HTTP 200 from http://127.0.0.1:{server.server_address[1]}"
    )
    [(path, headers, body)] = server.received
    assert body == orjson.dumps(decision)
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert path == f"/hooks/{TOKEN}?sig={TOKEN}"


@pytest.mark.parametrize("status", [500, 404, 302])
def test_webhook_error_status_is_a_failure(plugins, server, status) -> None:
    server.status = status
    result = registry.create("actions", "webhook", url=_url(server)).apply(_decision())
    assert not result.ok
    assert f"HTTP {status}" in result.detail
    assert TOKEN not in result.detail
    # Not followed: the redirect's target got nothing, this server one POST.
    assert len(server.received) == 1


def test_webhook_closed_port_is_a_failure(plugins) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/{TOKEN}"
    result = registry.create("actions", "webhook", url=url).apply(_decision())
    assert not result.ok
    assert result.detail.startswith(f"http://127.0.0.1:{port}: ")
    assert TOKEN not in result.detail and "\n" not in result.detail


def test_webhook_timeout_is_a_failure(plugins, server) -> None:
    server.hang.set()
    result = registry.create("actions", "webhook", url=_url(server), timeout_s=0.2).apply(
        _decision()
    )
    assert not result.ok
    assert "timed out" in result.detail
    assert TOKEN not in result.detail


def test_webhook_refuses_a_non_http_url(plugins) -> None:
    with pytest.raises(ValueError, match="http or https"):
        registry.create("actions", "webhook", url=f"file:///etc/{TOKEN}")

"""The worker's consumer fetches in batches: the settings reach the consumer Faust builds."""

from __future__ import annotations

import asyncio

import pytest

from streams.runtime.app import app
from streams.runtime.settings import Settings, SettingsError


def test_fetch_settings_default_to_batches_and_read_their_env_vars() -> None:
    default = Settings.from_env({})
    assert (default.fetch_min_bytes, default.fetch_max_wait_ms) == (32 * 1024, 25)
    tuned = Settings.from_env(
        {"AUTOPILOT_FETCH_MIN_BYTES": "1", "AUTOPILOT_FETCH_MAX_WAIT_MS": "500"}
    )
    assert (tuned.fetch_min_bytes, tuned.fetch_max_wait_ms) == (1, 500)


@pytest.mark.parametrize(
    ("name", "value"),
    [("AUTOPILOT_FETCH_MIN_BYTES", "0"), ("AUTOPILOT_FETCH_MAX_WAIT_MS", "1501")],
)
def test_fetch_settings_out_of_range_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_worker_consumer_faust_builds_batches_its_fetches() -> None:
    async def build() -> tuple[int, int]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_min_bytes, consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == (app.fetch_min_bytes, app.fetch_max_wait_ms)
    assert (app.fetch_min_bytes, app.fetch_max_wait_ms) != (1, 500), "aiokafka's defaults"

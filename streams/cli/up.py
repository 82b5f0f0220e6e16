"""``autopilot up``: the whole product on one machine, stopped by one Ctrl-C (``make run``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from schemas.topics import TopicNames
from streams.cli.kafka import create_product_topics
from streams.kafka.local import KafkaLocal, KafkaLocalError
from streams.lab.scenario import MAX_DURATION_S
from streams.runtime.settings import Settings

__all__ = ["up"]


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    click.echo(f"stopped {name} (exit {proc.returncode})", err=True)


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM (from a supervisor) and SIGINT stop us as Ctrl-C does."""
    raise KeyboardInterrupt


class FirstDecisions(threading.Thread):
    """Says in one line, once per decision kind, when the first one is published."""

    def __init__(self, settings: Settings, names: TopicNames, console_url: str) -> None:
        super().__init__(name="first-decisions", daemon=True)
        self.settings, self.console_url = settings, console_url
        self.choices = {names.scaling: "scaling", names.failover: "failover",
                        names.remediation: "remediation"}  # fmt: skip
        self.since = time.monotonic()
        self.seen: set[str] = set()
        self._stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    def stop(self) -> None:
        self._stop.set()

    async def _watch(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.choices,
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # this run's decisions, not an earlier run's
            **self.settings.aiokafka_security_kwargs(),
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for message in (m for ms in batch.values() for m in ms):
                    self._say(message.topic, message.value)
        finally:
            await consumer.stop()

    def _say(self, topic: str, value: bytes | None) -> None:
        try:
            decision = orjson.loads(value or b"")
            kind = decision["kind"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if kind in self.seen:
            return
        self.seen.add(kind)
        subject = "/".join(str(v) for v in decision.get("subject", {}).values())
        click.echo(
            f"+{time.monotonic() - self.since:.0f}s first {kind} decision: "
            f"{decision.get('action')} {subject} ({decision.get('mode')}); see the console "
            f"{self.console_url} or: autopilot tail {self.choices[topic]}",
            err=True,
        )


@click.command()
@click.option("--kafka-port", type=int, default=9092, show_default=True,
              help="Port of the local broker (ignored when AUTOPILOT_BROKER is set).")  # fmt: skip
@click.option("--history", type=click.FloatRange(min=0), default=900.0, show_default=True,
              help="Event seconds of quiet telemetry first, sent at once and taken by the "
              "worker as fast as it can: the detectors need 144 samples (12 min at the "
              "5 s tick) before they judge.")  # fmt: skip
@click.option("--scenario-speed", type=click.FloatRange(min=0), default=120.0,
              show_default=True, help="Speed of the scenario after the history: at 120 the "
              "eventful hour's decisions all come within a minute.")  # fmt: skip
@click.option("--interactions-per-s", type=click.FloatRange(min=0), default=4.0,
              show_default=True, help="User interactions per second: fewer than the "
              "simulator's 10, so that one worker on two cores keeps up with the "
              "fast-forward (interactions are most of its records).")  # fmt: skip
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Speed once the scenario is over (1: real time).")  # fmt: skip
@click.option("--scenario", default="mixed", show_default=True, help="Simulator scenario.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".autopilot"), show_default=True, help="Logs and state.")  # fmt: skip
def up(
    kafka_port: int, history: float, scenario_speed: float, interactions_per_s: float,
    speed: float, scenario: str, run_dir: Path,
) -> None:  # fmt: skip
    """Start local Kafka (unless AUTOPILOT_BROKER is set), a worker and the simulator.

    Logs go to the run dir; Ctrl-C stops everything this command started.
    """
    run_dir = run_dir.absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = dict(os.environ)
    broker: KafkaLocal | None = None
    if not env.get("AUTOPILOT_BROKER"):
        broker = KafkaLocal(
            port=kafka_port, data_dir=run_dir / "kafka", log=lambda m: click.echo(m, err=True)
        )
        if broker.pid() is not None:
            click.echo(f"using the Kafka already running on {broker.bootstrap}", err=True)
            broker = None
        else:
            try:
                broker.start(owned=True)
            except KafkaLocalError as exc:
                raise click.ClickException(str(exc)) from None
        env["AUTOPILOT_BROKER"] = f"kafka://127.0.0.1:{kafka_port}"
    settings = Settings.from_env(env)
    try:
        click.echo(create_product_topics(settings.bootstrap_servers), err=True)
    except (KafkaError, OSError) as exc:  # the worker creates them too: say so, go on
        click.echo(f"could not create the topics up front ({exc}); the worker will", err=True)
    autopilot = [sys.executable, "-m", "streams"]
    children: list[tuple[str, subprocess.Popen]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen:
        log = (run_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen([*autopilot, *args], env=env, stdout=log, stderr=log)
        children.append((name, proc))
        return proc

    signal.signal(signal.SIGTERM, _interrupt)
    # Python raises KeyboardInterrupt on SIGINT only if SIGINT was not ignored when it
    # started, and a shell without job control starts background commands with it ignored:
    # Ctrl-C (or a supervisor's SIGINT) must stop everything whatever started us.
    signal.signal(signal.SIGINT, _interrupt)
    firsts: FirstDecisions | None = None
    try:
        worker = spawn("worker", "worker", "-l", "info")
        metrics_url = f"http://{settings.web_host}:{settings.web_port}/metrics"
        if not _wait_http(metrics_url, worker, 120):
            raise click.ClickException(f"the worker did not start; see {run_dir / 'worker.log'}")
        console_url = f"http://{settings.web_host}:{settings.web_port}/console/"
        firsts = FirstDecisions(settings, TopicNames(settings.topic_prefix), console_url)
        firsts.start()
        spawn(
            "simulator", "simulate", "--scenario", scenario, "--history", str(history),
            "--speed", str(scenario_speed), "--after-speed", str(speed),
            "--interactions-per-s", str(interactions_per_s),
            "--duration", str(MAX_DURATION_S - history),
            "--ground-truth", str(run_dir / "ground_truth.json"),
        )  # fmt: skip
        click.echo(
            f"\nup in {time.monotonic() - started:.1f}s: broker {settings.bootstrap_servers}, "
            f"worker and simulator running (logs in {run_dir}).\n"
            f"  console:    {console_url}\n"
            f"  decisions:  .venv/bin/autopilot tail            (or: tail scaling|failover|"
            f"remediation|dlq)\n"
            f"  metrics:    {metrics_url}\n"
            f"The simulator sends {history / 3600:g} h of history, then plays the "
            f"{scenario!r} scenario at {scenario_speed:g}x, then goes on at {speed:g}x; each "
            f"first decision of a kind is announced here.\n"
            f"Ctrl-C stops everything.",
            err=True,
        )
        firsts.since = time.monotonic()
        while all(proc.poll() is None for name, proc in children if name == "worker"):
            time.sleep(1)
        raise click.ClickException(f"the worker exited; see {run_dir / 'worker.log'}")
    except KeyboardInterrupt:
        click.echo("\nstopping...", err=True)
    finally:
        if firsts is not None:
            firsts.stop()
        for name, proc in reversed(children):
            _stop(proc, name)
        if broker is not None:
            broker.stop()

"""``autopilot up``: the whole product on one machine, stopped by one Ctrl-C (``make run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from streams.kafka.local import KafkaLocal, KafkaLocalError
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
    """SIGTERM (from a supervisor) stops us as Ctrl-C does."""
    raise KeyboardInterrupt


@click.command()
@click.option("--kafka-port", type=int, default=9092, show_default=True,
              help="Port of the local broker (ignored when AUTOPILOT_BROKER is set).")  # fmt: skip
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulator event seconds per wall second.")  # fmt: skip
@click.option("--scenario", default="mixed", show_default=True, help="Simulator scenario.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".autopilot"), show_default=True, help="Logs and state.")  # fmt: skip
def up(kafka_port: int, speed: float, scenario: str, run_dir: Path) -> None:
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
    autopilot = [sys.executable, "-m", "streams"]
    children: list[tuple[str, subprocess.Popen]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen:
        log = (run_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen([*autopilot, *args], env=env, stdout=log, stderr=log)
        children.append((name, proc))
        return proc

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        worker = spawn("worker", "worker", "-l", "info")
        metrics_url = f"http://{settings.web_host}:{settings.web_port}/metrics"
        if not _wait_http(metrics_url, worker, 120):
            raise click.ClickException(f"the worker did not start; see {run_dir / 'worker.log'}")
        sim_args = [
            "simulate",
            "--scenario",
            scenario,
            "--speed",
            str(speed),
            "--duration",
            "82800",
        ]
        spawn("simulator", *sim_args, "--ground-truth", str(run_dir / "ground_truth.json"))
        click.echo(
            f"\nup in {time.monotonic() - started:.1f}s: broker {settings.bootstrap_servers}, "
            f"worker and simulator running (logs in {run_dir}).\n"
            f"  console:    http://{settings.web_host}:{settings.web_port}/console/\n"
            f"  decisions:  .venv/bin/autopilot tail            (or: tail scaling|failover|"
            f"remediation|dlq)\n"
            f"  metrics:    {metrics_url}\n"
            f"Ctrl-C stops everything.",
            err=True,
        )
        while all(proc.poll() is None for name, proc in children if name == "worker"):
            time.sleep(1)
        raise click.ClickException(f"the worker exited; see {run_dir / 'worker.log'}")
    except KeyboardInterrupt:
        click.echo("\nstopping...", err=True)
    finally:
        for name, proc in reversed(children):
            _stop(proc, name)
        if broker is not None:
            broker.stop()

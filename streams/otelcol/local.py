"""A local OpenTelemetry Collector that writes OTLP telemetry to the local broker.

The binary is built once from Go modules with the OpenTelemetry Collector Builder and the
manifest ``streams/otelcol/builder.yaml`` (OTLP receiver, Prometheus receiver, batch
processor, Kafka exporter), into a per-user cache named by the manifest's hash: later starts
need neither network nor Go. :func:`collector_config` is the configuration a team pastes,
pointed at the local broker; :class:`OtelcolLocal` runs the collector with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.config import cache
from streams.kafka.local import _port_in_use, die_with_parent, free_port, pid_alive, terminate

__all__ = [
    "BUILDER",
    "MANIFEST",
    "OtelcolError",
    "OtelcolLocal",
    "ScrapeTarget",
    "collector_config",
    "default_cache_dir",
]

MANIFEST = Path(__file__).with_name("builder.yaml")
BUILDER = "go.opentelemetry.io/collector/cmd/builder@v0.165.0"
"""The builder, at the release of the collector modules the manifest names."""
BINARY = "otelcol-autopilot"


class OtelcolError(RuntimeError):
    """The collector could not be built, started or stopped; the message says why."""


def default_cache_dir() -> Path:
    """Where built collectors are kept: ``$AUTOPILOT_OTELCOL_CACHE`` or the XDG cache."""
    return cache.cache_dir("otelcol")


@dataclass(frozen=True)
class ScrapeTarget:
    """A Prometheus endpoint the collector scrapes: ``job`` becomes ``service.name``, and
    ``labels`` (``{"cloud_region": "eu-west"}``) become the data points' attributes."""

    job: str
    target: str
    labels: dict[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


def collector_config(
    bootstrap: str,
    *,
    topic_prefix: str = "",
    encoding: str = "otlp_proto",
    grpc_port: int = 4317,
    http_port: int = 4318,
    scrape: Sequence[ScrapeTarget] = (),
    scrape_interval_s: float = 15.0,
) -> dict[str, Any]:
    """The collector configuration: OTLP (and scraped Prometheus) metrics and logs, batched,
    to ``<prefix>otlp_metrics`` and ``<prefix>otlp_logs`` on ``bootstrap``.

    Each message is partitioned by its resource's attributes, so that every point of a
    series lands on one partition: autopilot turns counters into rates there.

    Examples
    --------
    >>> config = collector_config("127.0.0.1:9092", topic_prefix="t1.")
    >>> config["exporters"]["kafka"]["metrics"]
    {'topic': 't1.otlp_metrics', 'encoding': 'otlp_proto'}
    >>> config["service"]["pipelines"]["metrics"]["receivers"]
    ['otlp']
    """
    receivers: dict[str, Any] = {
        "otlp": {
            "protocols": {
                "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                "http": {"endpoint": f"127.0.0.1:{http_port}"},
            }
        }
    }
    metric_receivers = ["otlp"]
    if scrape:
        receivers["prometheus"] = {
            "config": {
                "scrape_configs": [
                    {
                        "job_name": t.job,
                        "scrape_interval": f"{scrape_interval_s:g}s",
                        "metrics_path": t.metrics_path,
                        "static_configs": [{"targets": [t.target], "labels": t.labels}],
                    }
                    for t in scrape
                ]
            }
        }
        metric_receivers.append("prometheus")
    return {
        "receivers": receivers,
        "processors": {"batch": {"timeout": "200ms", "send_batch_size": 1000}},
        "exporters": {
            "kafka": {
                "brokers": [bootstrap],
                "metrics": {"topic": f"{topic_prefix}otlp_metrics", "encoding": encoding},
                "logs": {"topic": f"{topic_prefix}otlp_logs", "encoding": encoding},
                "partition_metrics_by_resource_attributes": True,
                "partition_logs_by_resource_attributes": True,
            }
        },
        "service": {
            # No listener of the collector's own: two collectors on one machine would
            # both want port 8888.
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            "pipelines": {
                "metrics": {
                    "receivers": metric_receivers,
                    "processors": ["batch"],
                    "exporters": ["kafka"],
                },
                "logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["kafka"]},
            },
        },
    }


@dataclass
class OtelcolLocal:
    """One local collector: its binary (built on first use), config, pid and log in
    ``data_dir``."""

    data_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    log: Callable[[str], None] = print

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "otelcol.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "otelcol.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "otelcol.json"

    @property
    def binary(self) -> Path:
        """Where the binary of the manifest as it is now is (or will be) built."""
        digest = hashlib.sha256(MANIFEST.read_bytes()).hexdigest()[:12]
        return self.cache_dir / digest / BINARY

    def build(self) -> Path:
        """Build the collector once; return its binary.

        Callers that start at once (two test sessions) take turns on a lock file: the
        first builds, the others find the binary it left.
        """
        binary = self.binary
        if binary.exists():
            return binary
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with (self.cache_dir / ".build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.exists():
                self._build_into(binary)
        return binary

    def _build_into(self, binary: Path) -> None:
        go = _go()
        tools = self.cache_dir / "bin"
        self.log(f"installing the collector builder ({BUILDER}) into {tools}")
        # The builder runs go itself: from PATH, which a non-login shell may lack it on.
        path = f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "GOBIN": str(tools), "PATH": path}
        self._run([go, "install", BUILDER], env, "go install of the builder")
        staging = binary.parent / "build"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        manifest = staging / "builder.yaml"
        text = MANIFEST.read_text().replace("dist:\n", f"dist:\n  output_path: {staging}\n", 1)
        manifest.write_text(text)
        self.log(
            f"building the OpenTelemetry Collector into {binary.parent}: once, about 3 to 5 "
            "minutes on 2 cores"
        )
        started = time.monotonic()
        self._run([str(tools / "builder"), "--config", str(manifest)], env, "the collector build")
        (staging / BINARY).rename(binary)
        shutil.rmtree(staging, ignore_errors=True)
        self.log(f"built {binary} in {time.monotonic() - started:.0f} s")

    @staticmethod
    def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
            raise OtelcolError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")

    def pid(self) -> int | None:
        """The pid of this collector if it runs, else ``None`` (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, config: dict[str, Any], *, owned: bool = False, timeout_s: float = 60.0) -> int:
        """Start the collector with ``config``; return its pid once its OTLP/HTTP port listens.

        Raises :class:`OtelcolError` if it already runs, if a receiver's port is taken, or
        if it exits during start (with the end of its log).
        """
        if (pid := self.pid()) is not None:
            raise OtelcolError(f"the collector already runs (pid {pid}); stop it first")
        http = int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":")[-1])
        grpc = int(config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":")[-1])
        for port in (grpc, http):
            if _port_in_use(port):
                raise OtelcolError(f"port {port} on 127.0.0.1 is in use by another process")
        binary = self.build()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: the collector reads it as its config file.
        self.config_file.write_text(json.dumps(config, indent=2))
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                [str(binary), "--config", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if owned else None,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while not _port_in_use(http):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-8:]
                raise OtelcolError(
                    f"the collector did not start (exit {proc.returncode}): {' | '.join(tail)}"
                )
            time.sleep(0.2)
        self.log(f"OpenTelemetry Collector ready: OTLP on 127.0.0.1:{grpc} (gRPC), :{http} (HTTP)")
        return proc.pid

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the collector (SIGTERM, then SIGKILL); whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return True


def _go() -> str:
    """The go command: on PATH, else where Go's installer puts it (a shell that did not read
    the profile adding it to PATH, as CI's, still finds it)."""
    found = shutil.which("go")
    if found:
        return found
    for root in (os.environ.get("GOROOT", "/usr/local/go"), "/usr/local/go"):
        go = Path(root) / "bin" / "go"
        if os.access(go, os.X_OK):
            return str(go)
    raise OtelcolError(
        "go is not on PATH nor in /usr/local/go; it is needed once to build the "
        "OpenTelemetry Collector from Go modules (https://go.dev/doc/install)"
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)

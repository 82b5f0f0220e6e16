"""Kafka's MirrorMaker 2 between local clusters: regional telemetry to the hub, decisions back.

A multi-region platform runs a Kafka cluster in each region; the engine runs on one hub
cluster. MirrorMaker 2 (``org.apache.kafka:connect-mirror``, dedicated mode) copies each
region's input topics to the hub and the hub's decision topics back to every region. It is
fetched from Maven Central with ``mvn`` into the per-user cache, once, as the broker is.

The replication policy is Kafka's ``IdentityReplicationPolicy``: a replica keeps its
topic's name. So the hub's ``telemetry.metrics`` holds every region's samples, and the
worker reads it as it reads a single cluster's, with no per-region topic list; each record
names its region already. The default policy would prefix (``us-east.telemetry.metrics``)
and make every reader list or pattern-match a topic per region. The identity policy cannot
tell a replica from an original, so no topic may flow both ways: inputs flow only towards
the hub and decisions only away from it (:func:`hub_flows`), which is what rules out cycles.
A replica keeps its source partition, and every producer keys a series alike, so a series
lands on the same partition number in every cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schemas.topics import TopicNames
from streams.kafka.local import (
    KafkaLocalError,
    default_cache_dir,
    die_with_parent,
    fetch_jars,
    java_for_kafka,
    log_tail,
    pid_alive,
    state_dir,
    terminate,
    write_log4j,
)

__all__ = ["MirrorFlow", "MirrorMaker", "hub_flows", "mirror_version", "standby_flow"]

MIRROR_POM = Path(__file__).with_name("mirror-pom.xml")
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
# MirrorMaker's source task logs this for its flow once it copies (MirrorSourceTask, 4.3).
_FLOW_COPYING = re.compile(r"replicating \d+ topic-partitions (\S+->\S+):")
# The prefixes of the replication factor settings of every topic MirrorMaker creates: the
# copies, then its own.
_CREATED_TOPICS = (
    "",
    "checkpoints.topic.",
    "heartbeats.topic.",
    "offset-syncs.topic.",
    "offset.storage.",
    "status.storage.",
    "config.storage.",
)
_FLOW_ENABLED = re.compile(r"^([^\s.]+->[^\s.]+)\.enabled = true$", re.MULTILINE)


def mirror_version(pom: Path = MIRROR_POM) -> str:
    """The MirrorMaker version pinned in its pom.

    >>> mirror_version()
    '4.3.1'
    """
    node = ET.parse(pom).getroot().find("m:properties/m:mirror.version", _POM_NS)
    if node is None or not node.text:
        raise KafkaLocalError(f"{pom} has no <mirror.version> property")
    return node.text.strip()


@dataclass(frozen=True)
class MirrorFlow:
    """What MirrorMaker copies from cluster ``source`` to cluster ``target``.

    Parameters
    ----------
    topics
        Regular expressions of the topics to copy (whole names).
    groups
        Regular expressions of the consumer groups whose committed offsets are translated
        to ``target`` and committed there, while the group has no member on ``target``.

    >>> MirrorFlow("us-east", "global", ("telemetry.metrics",)).name
    'us-east->global'
    """

    source: str
    target: str
    topics: tuple[str, ...]
    groups: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


def _names(topics: Sequence[str]) -> tuple[str, ...]:
    return tuple(re.escape(topic) for topic in topics)


def hub_flows(regions: Sequence[str], hub: str, topics: TopicNames) -> list[MirrorFlow]:
    """Each region's input topics to the hub, and the hub's decision topics to each region.

    >>> flows = hub_flows(["us-east", "eu-west"], "global", TopicNames())
    >>> [flow.name for flow in flows]
    ['us-east->global', 'global->us-east', 'eu-west->global', 'global->eu-west']
    >>> [re.fullmatch(t, "telemetry.metrics") is not None for t in flows[0].topics][:2]
    [True, False]
    >>> len(flows[1].topics)
    3
    """
    if hub in regions:
        raise KafkaLocalError(f"the hub {hub!r} cannot also be a region")
    if len(set(regions)) != len(regions):
        raise KafkaLocalError(f"a region is named twice in {list(regions)}")
    flows = []
    for region in regions:
        flows.append(MirrorFlow(region, hub, _names(topics.inputs())))
        flows.append(MirrorFlow(hub, region, _names(topics.decisions())))
    return flows


def standby_flow(
    hub: str, standby: str, regions: Sequence[str], topics: TopicNames, app_id: str
) -> MirrorFlow:
    """Everything a standby engine needs to take over from the hub's, copied to ``standby``.

    Every topic of the product (inputs, internal summaries, decisions) and of the engine's
    Faust app ``app_id`` (the changelogs its tables restore from), with the app's committed
    offsets translated.

    >>> flow = standby_flow("global", "standby", ["us-east"], TopicNames(), "paas-autopilot")
    >>> flow.name
    'global->standby'
    >>> names = ("paas-autopilot-region-brain-changelog", "telemetry.metrics", "other")
    >>> [n for n in names if any(re.fullmatch(t, n) for t in flow.topics)]
    ['paas-autopilot-region-brain-changelog', 'telemetry.metrics']
    """
    if standby == hub or standby in regions:
        raise KafkaLocalError(f"the standby {standby!r} must be a cluster of its own")
    return MirrorFlow(
        hub,
        standby,
        (*_names(topics.all()), re.escape(f"{app_id}-") + ".*"),
        groups=(re.escape(app_id),),
    )


def _flow_properties(pair: str, flow: MirrorFlow) -> dict[str, str]:
    props = {f"{pair}.topics": ", ".join(flow.topics)}
    if flow.groups:
        props[f"{pair}.groups"] = ", ".join(flow.groups)
        props[f"{pair}.sync.group.offsets.enabled"] = "true"
        # A committed offset translates to the copy's offset of the last offset sync before
        # it. MirrorMaker writes a sync once the copy has moved 100 records past the last
        # (by default): on a quiet topic a minute of records, all replayed on taking over.
        # And offsets are translated each second, not each minute, so that a standby engine
        # resumes close to where the primary stopped.
        props[f"{pair}.offset.lag.max"] = "10"
        props[f"{pair}.emit.checkpoints.interval.seconds"] = "1"
        props[f"{pair}.sync.group.offsets.interval.seconds"] = "1"
    return props


@dataclass
class MirrorMaker:
    """One MirrorMaker 2 process in dedicated mode: configure, start, wait, stop.

    Parameters
    ----------
    clusters
        Each cluster's alias and bootstrap (``{"us-east": "127.0.0.1:9192"}``).
    flows
        What to copy; every other pair of clusters is left alone.
    data_dir
        ``mm2.properties``, pid file and MirrorMaker's log live here.
    replication_factor
        Of the topics MirrorMaker creates (copies and its own): 1 for the local clusters
        of ``autopilot kafka start --name``, 3 for most production clusters.
    """

    clusters: Mapping[str, str]
    flows: Sequence[MirrorFlow]
    replication_factor: int = 1
    data_dir: Path = field(default_factory=lambda: state_dir() / "mirror")
    cache_dir: Path = field(default_factory=default_cache_dir)
    heap: str = field(default_factory=lambda: os.environ.get("AUTOPILOT_MIRROR_HEAP", "512m"))
    log: Callable[[str], None] = lambda _msg: None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        self.version = mirror_version()
        for flow in self.flows:
            for alias in (flow.source, flow.target):
                if alias not in self.clusters:
                    raise KafkaLocalError(f"flow {flow.name} names {alias!r}, not a cluster")

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"mirror-{self.version}" / "libs"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "mm2.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "mirror.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "mirror.log"

    def properties(self) -> dict[str, str]:
        """The ``mm2.properties`` of these clusters and flows.

        >>> mm = MirrorMaker({"a": "h:1", "b": "h:2"}, [MirrorFlow("a", "b", ("t.x",))])
        >>> props = mm.properties()
        >>> props["a->b.enabled"], props["a->b.topics"], props["b->a.enabled"]
        ('true', 't.x', 'false')
        """
        props = {
            "clusters": ", ".join(self.clusters),
            **{f"{alias}.bootstrap.servers": boot for alias, boot in self.clusters.items()},
            "replication.policy.class": IDENTITY_POLICY,
            **{
                f"{topics}replication.factor": str(self.replication_factor)
                for topics in _CREATED_TOPICS
            },
            "sync.topic.acls.enabled": "false",
            # The worker creates its topics after MirrorMaker may have started: look often.
            "refresh.topics.interval.seconds": "5",
            "refresh.groups.interval.seconds": "5",
            # Each flow's position is stored each second, not each minute: a MirrorMaker
            # started again copies again what it copied since, so a second of it, not a minute.
            "offset.flush.interval.ms": "1000",
        }
        enabled = {(flow.source, flow.target): flow for flow in self.flows}
        for source in self.clusters:
            for target in self.clusters:
                if source == target:
                    continue
                flow = enabled.get((source, target))
                pair = f"{source}->{target}"
                props[f"{pair}.enabled"] = "true" if flow else "false"
                # No herder at all for a pair that copies nothing.
                props[f"{pair}.emit.heartbeats.enabled"] = "true" if flow else "false"
                if flow:
                    props.update(_flow_properties(pair, flow))
        return props

    def pid(self) -> int | None:
        """The pid of our running MirrorMaker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if pid_alive(pid) and str(self.config_file).encode() in cmdline:
                return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, *, owned: bool = False, timeout_s: float = 120.0) -> int:
        """Start MirrorMaker; return its pid once every flow's source task has started.

        Raises :class:`KafkaLocalError` if it already runs, or exits or hangs during start.
        """
        if (pid := self.pid()) is not None:
            raise KafkaLocalError(f"MirrorMaker is already running (pid {pid})")
        java = java_for_kafka(f"MirrorMaker {self.version}")
        libs = fetch_jars(MIRROR_POM, self.libs_dir, f"MirrorMaker {self.version}", self.log)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("".join(f"{k} = {v}\n" for k, v in self.properties().items()))
        write_log4j(
            self.data_dir / "log4j2.properties",
            self.log_file,
            info=("org.apache.kafka.connect.mirror",),
        )
        started_at = self.log_file.stat().st_size if self.log_file.exists() else 0
        cmd = [
            java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp", f"{libs}/*", "org.apache.kafka.connect.mirror.MirrorMaker",
            str(self.config_file),
        ]  # fmt: skip
        console = (self.log_file.parent / "console.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if owned else None,
        )
        console.close()
        self.pid_file.write_text(str(proc.pid))
        try:
            self._wait_ready(proc, started_at, timeout_s)
        except BaseException:
            terminate(proc.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        flows = ", ".join(flow.name for flow in self.flows)
        self.log(f"MirrorMaker {self.version} copying {flows} (pid {proc.pid})")
        return proc.pid

    def _wait_ready(self, proc: subprocess.Popen, offset: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaLocalError(
                    f"MirrorMaker exited with code {proc.returncode} during start; "
                    f"last lines of {self.log_file}: {self.log_tail()}"
                )
            if self._flows_copying(offset) >= {flow.name for flow in self.flows}:
                return
            time.sleep(0.5)
        raise KafkaLocalError(
            f"MirrorMaker did not start its {len(self.flows)} flows within {timeout_s:.0f}s; "
            f"last lines of {self.log_file}: {self.log_tail()}"
        )

    def _flows_copying(self, offset: int) -> set[str]:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return set()
        return set(_FLOW_COPYING.findall(text))

    def log_tail(self, lines: int = 8) -> str:
        return log_tail(self.log_file, lines)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop our MirrorMaker; False when none was running."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        self.log(f"MirrorMaker stopped (pid {pid})")
        return True

    def status(self) -> str:
        """Whether MirrorMaker runs, and the flows its ``mm2.properties`` enables."""
        pid = self.pid()
        if pid is None:
            return f"MirrorMaker is not running (data dir {self.data_dir})"
        try:
            flows = ", ".join(_FLOW_ENABLED.findall(self.config_file.read_text()))
        except OSError:
            flows = "(its mm2.properties is gone)"
        return f"MirrorMaker {self.version} is running (pid {pid}), copying {flows}"

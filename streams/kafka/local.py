"""A local, single-node Apache Kafka (KRaft) managed by the project.

The official broker jars come from Maven Central through ``mvn`` and the pom in
``streams/kafka/pom.xml``, into a per-user cache, once; later starts need no
network. One combined broker+controller listens on 127.0.0.1; with a
:class:`BrokerSecurity` it also has a SASL_SSL client listener.

The broker is started in its own session so a Ctrl-C in the caller's terminal
does not tear it down half-way; with ``owned=True`` (tests, ``make run``) it is
also bound to its caller's life with ``PR_SET_PDEATHSIG``, so a caller killed
with SIGKILL leaves no orphan java process behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.config import cache

__all__ = [
    "BrokerSecurity",
    "KafkaLocal",
    "KafkaLocalError",
    "default_cache_dir",
    "env_data_dir",
    "kafka_version",
    "named_broker",
    "started_port",
    "state_dir",
]

POM = Path(__file__).with_name("pom.xml")
MIN_JAVA = 17
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_PR_SET_PDEATHSIG = 1


class KafkaLocalError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def kafka_version(pom: Path = POM) -> str:
    """The broker version pinned in the project's pom.

    >>> kafka_version().startswith("4.")
    True
    """
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not node.text:
        raise KafkaLocalError(f"{pom} has no <kafka.version> property")
    return node.text.strip()


def default_cache_dir() -> Path:
    """Where broker jars are kept: ``$AUTOPILOT_KAFKA_CACHE`` or the XDG cache."""
    return cache.cache_dir("kafka")


def state_dir() -> Path:
    """Where local brokers and mirrors keep their data: the XDG state dir."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "paas-autopilot"


def env_data_dir() -> Path | None:
    """The data dir ``AUTOPILOT_KAFKA_DATA`` names, if it is set."""
    env = os.environ.get("AUTOPILOT_KAFKA_DATA")
    return Path(env) if env else None


def default_data_dir(port: int) -> Path:
    return env_data_dir() or state_dir() / f"kafka-{port}"


def started_port(data_dir: Path) -> int | None:
    """The client port of the broker last started with ``data_dir``, from the config it
    wrote there; ``None`` if it holds none.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "server.properties").write_text(
    ...         "node.id=1\\nadvertised.listeners=PLAINTEXT://127.0.0.1:19092\\n")
    ...     started_port(Path(tmp)), started_port(Path(tmp) / "none")
    (19092, None)
    """
    with contextlib.suppress(OSError):
        config = (data_dir / "server.properties").read_text()
        found = re.search(r"^advertised\.listeners=PLAINTEXT://[^:,]+:(\d+)", config, re.M)
        return int(found.group(1)) if found else None
    return None


_CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")


def named_broker(
    name: str, *, port: int | None = None, data_dir: Path | None = None, **kwargs: Any
) -> KafkaLocal:
    """The local cluster called ``name`` (``us-east``, ``global``), with its own data dir,
    ports and cluster id, so that one machine can run several.

    The client port is ``port`` if given, else the one the cluster had before (kept in
    its data dir), else a free one; ``status`` and ``stop`` find it by name alone.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     first = named_broker("eu-west", data_dir=Path(d))
    ...     again = named_broker("eu-west", data_dir=Path(d))
    ...     first.port == again.port, first.name
    (True, 'eu-west')
    >>> try:
    ...     named_broker("EU West")
    ... except KafkaLocalError as exc:
    ...     print(str(exc)[:40])
    cluster name 'EU West': use lower-case l
    """
    if not _CLUSTER_NAME.fullmatch(name):
        raise KafkaLocalError(
            f"cluster name {name!r}: use lower-case letters, digits and '-', at most 31, "
            "e.g. us-east"
        )
    data_dir = Path(data_dir or state_dir() / f"kafka-{name}").absolute()
    port_file = data_dir / "port"
    if port is None:
        with contextlib.suppress(OSError, ValueError):
            port = int(port_file.read_text())
    if port is None:
        port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file.write_text(str(port))
    return KafkaLocal(port=port, data_dir=data_dir, name=name, **kwargs)


def _java_major(java: str) -> int:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError as exc:
        raise KafkaLocalError(f"java could not be run: {exc}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise KafkaLocalError(f"could not read the java version from: {out.strip()[:200]}")
    major = int(match.group(1))
    # Java 8 and older report themselves as 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def fetch_jars(pom: Path, libs_dir: Path, what: str, log: Callable[[str], None]) -> Path:
    """Download the runtime jars of ``pom`` into ``libs_dir`` once, with ``mvn``; return it.

    Callers that start at once (two test sessions, two ``autopilot kafka start``) take turns
    on a lock file: the first fetches, the others find the jars it left.
    """
    marker = libs_dir / ".complete"
    if marker.exists():
        return libs_dir
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    with (libs_dir.parent / ".fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaLocalError(
                f"mvn (Apache Maven) is not on PATH; it is needed once to fetch {what} "
                "(apt-get install maven), or set AUTOPILOT_BROKER to use your own Kafka"
            )
        log(f"fetching {what} from Maven Central into {libs_dir}")
        staging = libs_dir.with_name(libs_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise KafkaLocalError(f"mvn could not fetch {what}: {' | '.join(tail)}")
        shutil.rmtree(libs_dir, ignore_errors=True)
        staging.rename(libs_dir)
        marker.write_text(what)
    return libs_dir


def java_for_kafka(what: str) -> str:
    """The ``java`` on PATH, if it is new enough to run ``what`` (Kafka's JVMs)."""
    java = shutil.which("java")
    if java is None:
        raise KafkaLocalError(
            f"java is not on PATH; {what} needs Java {MIN_JAVA} or newer "
            "(apt-get install openjdk-17-jre-headless), or set AUTOPILOT_BROKER"
        )
    major = _java_major(java)
    if major < MIN_JAVA:
        raise KafkaLocalError(f"java {major} is too old; {what} needs Java {MIN_JAVA} or newer")
    return java


def log_tail(log_file: Path, lines: int = 8) -> str:
    """The last ``lines`` of a Kafka JVM's log and of the console log beside it, on one line."""
    texts = []
    for path in (log_file, log_file.parent / "console.log"):
        with contextlib.suppress(OSError):
            texts.extend(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return " | ".join(texts[-lines:]) or "(empty)"


def write_log4j(path: Path, log_file: Path, *, info: tuple[str, ...] = ()) -> None:
    """A log4j2 configuration for a local Kafka JVM: to ``log_file``, rolled at 20 MB, two
    kept; Kafka's own classes at WARN, but the loggers named in ``info`` at INFO."""
    loggers = "".join(
        f"logger.info{n}.name = {name}\nlogger.info{n}.level = INFO\n"
        for n, name in enumerate(info)
    )
    path.write_text(
        "status = warn\n"
        "appender.file.type = RollingFile\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {log_file}\n"
        f"appender.file.filePattern = {log_file}.%i\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "appender.file.policies.type = Policies\n"
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
        "appender.file.policies.size.size = 20MB\n"
        "appender.file.strategy.type = DefaultRolloverStrategy\n"
        "appender.file.strategy.max = 2\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "logger.kafka.name = kafka\n"
        "logger.kafka.level = WARN\n"
        "logger.apache.name = org.apache.kafka\n"
        "logger.apache.level = WARN\n" + loggers
    )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes; reap it if it is our child.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _answers_metadata(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request."""
    return asyncio.run(_answers_metadata(bootstrap, timeout_s))


@dataclass(frozen=True)
class BrokerSecurity:
    """A SASL_SSL client listener with SCRAM users, beside the PLAINTEXT one.

    The PLAINTEXT listener stays for the broker's own traffic and the readiness
    probe; clients that should authenticate are pointed at :attr:`port`.

    Parameters
    ----------
    port
        The SASL_SSL port on 127.0.0.1.
    keystore
        PKCS12 keystore with the broker's private key and certificate chain.
    keystore_password
        Password of the keystore and of the key in it.
    scram_users
        User name to password; the broker stores them as ``mechanism`` credentials
        when it formats its storage (a data dir formatted before keeps its users).
        ``kafka-storage`` takes them on its command line, so this is for
        development and test brokers, not for secrets other local users must not see.
    mechanism
        The SCRAM mechanism the listener accepts.

    Examples
    --------
    >>> security = BrokerSecurity(1, Path("k.p12"), "store-pw", {"worker": "pw"})
    >>> "pw" in repr(security)
    False
    >>> security.scram_arguments()
    ['--add-scram', 'SCRAM-SHA-512=[name="worker",password="pw"]']
    """

    port: int
    keystore: Path
    keystore_password: str = field(repr=False)
    scram_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    mechanism: str = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        if self.mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise KafkaLocalError(f"{self.mechanism} is not a SCRAM mechanism")
        for name, password in self.scram_users.items():
            # kafka-storage reads name="..." without escapes.
            if not name or '"' in name + password:
                raise KafkaLocalError(f"SCRAM user {name!r}: names and passwords may not hold '\"'")

    def scram_arguments(self) -> list[str]:
        """The ``kafka-storage format`` arguments that create :attr:`scram_users`."""
        arguments = []
        for name, password in self.scram_users.items():
            arguments += ["--add-scram", f'{self.mechanism}=[name="{name}",password="{password}"]']
        return arguments

    def properties(self) -> dict[str, str]:
        """Broker properties of the SASL_SSL listener, beyond its place in ``listeners``."""
        return {
            "sasl.enabled.mechanisms": self.mechanism,
            # The server side of SCRAM needs a login module even with no inter-broker use.
            f"listener.name.sasl_ssl.{self.mechanism.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
            "listener.name.sasl_ssl.ssl.keystore.location": str(Path(self.keystore).absolute()),
            "listener.name.sasl_ssl.ssl.keystore.password": self.keystore_password,
            "listener.name.sasl_ssl.ssl.key.password": self.keystore_password,
        }


@dataclass
class KafkaLocal:
    """One local KRaft broker: fetch, format, start, wait, stop.

    Parameters
    ----------
    port
        The client (PLAINTEXT) port on 127.0.0.1.
    data_dir
        Log dirs, generated config, pid file and the broker's log live here.
    cache_dir
        Broker jars, shared by every data dir of this user.
    heap
        The broker JVM's ``-Xmx``; 512m is plenty for a development broker.
    security
        If given, a SASL_SSL client listener too (see :class:`BrokerSecurity`).
    name
        The cluster's name, when it is one of several on this machine
        (:func:`named_broker`); it appears in every message.
    """

    port: int = 9092
    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    heap: str = field(default_factory=lambda: os.environ.get("AUTOPILOT_KAFKA_HEAP", "512m"))
    log: Callable[[str], None] = lambda _msg: None
    security: BrokerSecurity | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.data_dir is None:
            self.data_dir = default_data_dir(self.port)
        self.data_dir = Path(self.data_dir).absolute()
        self.version = kafka_version()

    @property
    def title(self) -> str:
        """How messages name this broker: ``Kafka``, or ``Kafka cluster us-east``."""
        return "Kafka" if self.name is None else f"Kafka cluster {self.name}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str | None:
        """``host:port`` of the SASL_SSL listener, if the broker has one."""
        return None if self.security is None else f"127.0.0.1:{self.security.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / self.version / "libs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def pid(self) -> int | None:
        """The pid of our running broker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self._is_our_java(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_our_java(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return any(str(self.data_dir).encode() in part for part in cmdline)

    def fetch(self) -> Path:
        """Download the broker jars once; return the directory that holds them."""
        return fetch_jars(POM, self.libs_dir, f"Apache Kafka {self.version}", self.log)

    def _write_config(self, controller_port: int) -> Path:
        assert self.data_dir is not None
        logs = self.data_dir / "kraft-logs"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "4",
            # A single node cannot replicate; a development broker also needs no
            # 50-partition offsets topic, which slows the first consumer group down.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "24",
        }
        if self.security is not None:
            secure = f"SASL_SSL://127.0.0.1:{self.security.port}"
            props["listeners"] += f",{secure}"
            props["advertised.listeners"] += f",{secure}"
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props.update(self.security.properties())
        config = self.data_dir / "server.properties"
        if self.security is not None:
            # It will hold the keystore password: owner only, before it is written.
            config.touch(mode=0o600)
            config.chmod(0o600)
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        write_log4j(self.data_dir / "log4j2.properties", self.log_file)
        return config

    def _format(self, java: str, libs: Path, config: Path) -> None:
        assert self.data_dir is not None
        if (self.data_dir / "kraft-logs" / "meta.properties").exists():
            return
        cmd = [
            java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
            # The = form: a random id may start with "-", which would read as an option.
            f"--cluster-id={_cluster_id()}", "-c", str(config),
        ]  # fmt: skip
        if self.security is not None:
            cmd += self.security.scram_arguments()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KafkaLocalError(f"formatting KRaft storage failed: {proc.stdout}{proc.stderr}")

    def start(self, *, owned: bool = False, timeout_s: float = 90.0) -> int:
        """Start the broker and return its pid once it answers a metadata request.

        Raises :class:`KafkaLocalError` if it is already running (check :meth:`pid`
        first), if the port is taken, or if the broker exits during start.
        """
        assert self.data_dir is not None
        if (pid := self.pid()) is not None:
            raise KafkaLocalError(
                f"{self.title} is already running on {self.bootstrap} (pid {pid})"
            )
        if _port_in_use(self.port):
            raise KafkaLocalError(
                f"port {self.port} on 127.0.0.1 is in use by another process; "
                "choose another with --port, or set AUTOPILOT_BROKER to use that broker"
            )
        if self.security is not None and _port_in_use(self.security.port):
            raise KafkaLocalError(
                f"the SASL_SSL port {self.security.port} on 127.0.0.1 is in use by another process"
            )
        java = java_for_kafka(f"Kafka {self.version}")
        libs = self.fetch()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        config = self._write_config(free_port())
        self._format(java, libs, config)
        cmd = [
            java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp", f"{libs}/*", "kafka.Kafka", str(config),
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
            self._wait_ready(proc, timeout_s)
        except BaseException:
            # Interrupted or failed half-way: leave nothing of ours running.
            terminate(proc.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        self.log(f"{self.title} {self.version} ready on {self.bootstrap} (pid {proc.pid})")
        return proc.pid

    def _wait_ready(self, proc: subprocess.Popen, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaLocalError(
                    f"the broker exited with code {proc.returncode} during start; "
                    f"last lines of {self.log_file}: {self.log_tail()}"
                )
            if (
                _port_in_use(self.port)
                and broker_answers(self.bootstrap)
                and (self.security is None or _port_in_use(self.security.port))
            ):
                return
            time.sleep(0.3)
        raise KafkaLocalError(
            f"the broker did not answer on {self.bootstrap} within {timeout_s:.0f}s; "
            f"last lines of {self.log_file}: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 8) -> str:
        return log_tail(self.log_file, lines)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop our broker; False when none was running."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        self.log(f"{self.title} on {self.bootstrap} stopped (pid {pid})")
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"{self.title} is not running on {self.bootstrap} (data dir {self.data_dir})"
        answering = "answering" if broker_answers(self.bootstrap) else "NOT answering"
        return (
            f"{self.title} {self.version} is running on {self.bootstrap} (pid {pid}), {answering}"
        )


def terminate(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM ``pid``, then SIGKILL if it still runs after ``timeout_s``; wait until gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, url-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def our_java_pids(data_dir: Path) -> list[int]:
    """Every live java process whose command line names ``data_dir``."""
    needle = str(Path(data_dir).absolute()).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline.split(b"\0")[0] and needle in cmdline and pid_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids

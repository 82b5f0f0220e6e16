"""Worker settings, read from ``AUTOPILOT_*`` environment variables.

Every setting has a sane default for a laptop with a local broker; nonsense
values fail fast with a :class:`SettingsError` that names the variable.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from models.native import MODES as NATIVE_MODES
from schemas.config.budgets import DEFAULT_BUDGETS_PATH, load_budgets
from schemas.config.plugins import load_plugin_bindings
from schemas.config.prices import DEFAULT_PRICES_PATH, load_price_table
from schemas.config.regions import DEFAULT_REGION_CONFIG_PATH, load_region_config
from schemas.config.toml import ConfigError
from schemas.otlp import ENCODINGS, OtlpMapping
from streams.plugins.loading import plugin_modules as modules_of
from streams.runtime.heap import DEFAULT_THRESHOLDS

__all__ = ["LOG_LEVELS", "SASL_MECHANISMS", "SECURITY_PROTOCOLS", "Settings", "SettingsError"]

LOG_LEVELS = ("crit", "error", "warn", "info", "debug")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
_BROKER_PATTERN = re.compile(
    r"^kafka://[A-Za-z0-9.\-\[\]:]+:\d{1,5}(;[A-Za-z0-9.\-\[\]:]+:\d{1,5})*$"
)


N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting has a value the worker cannot run with."""


def _gc_thresholds(env: Mapping[str, str]) -> tuple[int, int, int]:
    """``AUTOPILOT_GC_THRESHOLDS``: three positive integers, comma-separated.

    >>> _gc_thresholds({"AUTOPILOT_GC_THRESHOLDS": "700,10,10"})
    (700, 10, 10)
    >>> _gc_thresholds({"AUTOPILOT_GC_THRESHOLDS": "700,10"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_GC_THRESHOLDS='700,10' is not three \
positive integers, e.g. 100000,50,10
    """
    raw = env.get("AUTOPILOT_GC_THRESHOLDS")
    if not raw:
        return DEFAULT_THRESHOLDS
    parts = raw.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise SettingsError(
            f"AUTOPILOT_GC_THRESHOLDS={raw!r} is not three positive integers, e.g. 100000,50,10"
        )
    young, middle, old = (int(p) for p in parts)
    return young, middle, old


def _number(env: Mapping[str, str], name: str, default: N, low: N, high: N, kind: type[N]) -> N:
    """The env var ``name`` as ``kind`` within ``[low, high]``, or ``default`` when unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r} is not {noun}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range [{low}, {high}]")
    return value


def _check_file(name: str, path: Path, load: Callable[[Path], object]) -> None:
    """Read a configuration file now, so that a bad one stops the worker at start-up.

    The message names the variable, then the file, the line and the field at fault.
    """
    try:
        load(path)
    except ConfigError as exc:
        raise SettingsError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to know before it connects.

    Examples
    --------
    >>> s = Settings.from_env({"AUTOPILOT_TOPIC_PREFIX": "t1.", "AUTOPILOT_PARTITIONS": "2"})
    >>> s.broker, s.partitions, s.app_id
    ('kafka://127.0.0.1:9092', 2, 't1.paas-autopilot')
    >>> Settings.from_env({"AUTOPILOT_PARTITIONS": "zero"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_PARTITIONS='zero' is not an integer
    >>> Settings.from_env({"AUTOPILOT_REGIONS": "/nowhere/regions.toml"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_REGIONS: /nowhere/regions.toml: \
no such region configuration file
    >>> Settings.from_env({"AUTOPILOT_BUDGETS": "off"}).budgets_path is None
    True
    >>> Settings.from_env({"AUTOPILOT_PRICES": "/nowhere/prices.toml"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_PRICES: /nowhere/prices.toml: \
no such price table file
    >>> Settings.from_env({"AUTOPILOT_PSEUDONYM_SALT": "x" * 65})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_PSEUDONYM_SALT must be at most 64 bytes
    >>> Settings.from_env({}).plugins_path is None
    True
    >>> Settings.from_env({"AUTOPILOT_OTLP_ENCODING": "otlp_yaml"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_OTLP_ENCODING='otlp_yaml' is not one of \
otlp_proto, otlp_json
    >>> Settings.from_env({"AUTOPILOT_PLUGINS_FILE": "/nowhere/plugins.toml"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_PLUGINS_FILE: /nowhere/plugins.toml: \
no such plugins file
    """

    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = 4
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    log_level: str = "info"
    app_id: str = "paas-autopilot"
    data_dir: Path = Path(".autopilot")
    checkpoint_interval_s: float = 30.0
    fetch_min_bytes: int = 32 * 1024
    """A fetch of the worker's consumer waits for this many bytes, or ``fetch_max_wait_ms``."""
    fetch_max_wait_ms: int = 25
    """The most a record waits in the broker for a fetch to fill
    (:mod:`streams.runtime.fetching`)."""
    gc_thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS
    """Python's collector thresholds in a started worker (:mod:`streams.runtime.heap`)."""
    regions_path: Path = DEFAULT_REGION_CONFIG_PATH
    prices_path: Path = DEFAULT_PRICES_PATH
    """Instance types, prices and per-service settings of the cost engine."""
    budgets_path: Path | None = DEFAULT_BUDGETS_PATH
    """Monthly budgets; ``None`` (``AUTOPILOT_BUDGETS=off``) watches none."""
    pseudonym_salt: str = "paas-autopilot-dev"
    """Key of the tenant pseudonyms; the default is public, for development only."""
    security_protocol: str = "PLAINTEXT"
    """How clients talk to the broker: one of :data:`SECURITY_PROTOCOLS`."""
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    """Kept out of ``repr()`` so that no log line or traceback can show it."""
    ssl_cafile: Path | None = None
    """The CA that signed the broker's certificate; ``None`` trusts the system CAs."""
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    plugins_path: Path | None = None
    """Which plugin serves which series or decision kind (:mod:`schemas.config.plugins`);
    ``None``: the built-ins serve everything until a control record binds a plugin."""
    plugin_modules: tuple[str, ...] = ()
    """Modules whose registry entries are plugins too, besides the installed entry points."""
    plugin_max_failures: int = 5
    """Failures (errors, overruns) within 1,000 calls that quarantine a plugin."""
    otlp_encoding: str = "otlp_proto"
    """How the collector's Kafka exporter encodes ``otlp_metrics`` and ``otlp_logs``."""
    otlp: OtlpMapping = field(default_factory=OtlpMapping)
    """Where OTLP telemetry's service and region come from, and its metrics' names."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: :data:`os.environ`)."""
        env = os.environ if env is None else env
        broker = env.get("AUTOPILOT_BROKER") or cls.broker
        if not broker.startswith("kafka://"):
            broker = "kafka://" + broker
        if not _BROKER_PATTERN.match(broker):
            raise SettingsError(
                f"AUTOPILOT_BROKER={broker!r} is not kafka://host:port[;host:port...]"
            )
        prefix = env.get("AUTOPILOT_TOPIC_PREFIX", "")
        if not _PREFIX_PATTERN.match(prefix):
            raise SettingsError(
                f"AUTOPILOT_TOPIC_PREFIX={prefix!r} may only hold letters, digits, '.', '_', '-'"
            )
        log_level = (env.get("AUTOPILOT_LOG_LEVEL") or cls.log_level).lower()
        if log_level == "warning":
            log_level = "warn"
        if log_level not in LOG_LEVELS:
            raise SettingsError(
                f"AUTOPILOT_LOG_LEVEL={log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        app_id = env.get("AUTOPILOT_APP_ID") or f"{prefix}{cls.app_id}"
        if not _PREFIX_PATTERN.match(app_id):
            raise SettingsError(f"AUTOPILOT_APP_ID={app_id!r} has characters Kafka rejects")
        regions_path = Path(env.get("AUTOPILOT_REGIONS") or cls.regions_path)
        # Read now, so that a bad file stops the worker at start-up, not at the first
        # failover evaluation or budget check.
        _check_file("AUTOPILOT_REGIONS", regions_path, load_region_config)
        prices_path = Path(env.get("AUTOPILOT_PRICES") or cls.prices_path)
        _check_file("AUTOPILOT_PRICES", prices_path, load_price_table)
        budgets = env.get("AUTOPILOT_BUDGETS") or str(cls.budgets_path)
        budgets_path = None if budgets.lower() in ("off", "none") else Path(budgets)
        if budgets_path is not None:
            _check_file("AUTOPILOT_BUDGETS", budgets_path, load_budgets)
        plugins = env.get("AUTOPILOT_PLUGINS_FILE")
        plugins_path = Path(plugins) if plugins else None
        if plugins_path is not None:
            _check_file("AUTOPILOT_PLUGINS_FILE", plugins_path, load_plugin_bindings)
        plugin_modules = tuple(modules_of(env))
        salt = env.get("AUTOPILOT_PSEUDONYM_SALT") or cls.pseudonym_salt
        if not 0 < len(salt.encode()) <= 64:
            # BLAKE2b keys are at most 64 bytes (models.brains.interactions.pseudonym).
            raise SettingsError("AUTOPILOT_PSEUDONYM_SALT must be at most 64 bytes")
        otlp_encoding = env.get("AUTOPILOT_OTLP_ENCODING") or cls.otlp_encoding
        if otlp_encoding not in ENCODINGS:
            raise SettingsError(
                f"AUTOPILOT_OTLP_ENCODING={otlp_encoding!r} is not one of {', '.join(ENCODINGS)}"
            )
        native = env.get("AUTOPILOT_NATIVE", "auto")
        if native not in NATIVE_MODES:
            # Read when models is imported (models.native), before these settings.
            raise SettingsError(
                f"AUTOPILOT_NATIVE={native!r} is not one of {', '.join(NATIVE_MODES)}"
            )
        try:
            otlp = OtlpMapping.from_env(env)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            broker=broker,
            topic_prefix=prefix,
            partitions=_number(env, "AUTOPILOT_PARTITIONS", cls.partitions, 1, 1024, int),
            web_port=_number(env, "AUTOPILOT_WEB_PORT", cls.web_port, 1, 65535, int),
            web_host=env.get("AUTOPILOT_WEB_HOST") or cls.web_host,
            log_level=log_level,
            app_id=app_id,
            data_dir=Path(env.get("AUTOPILOT_DATA_DIR") or cls.data_dir),
            checkpoint_interval_s=_number(
                env,
                "AUTOPILOT_CHECKPOINT_INTERVAL_S",
                cls.checkpoint_interval_s,
                0.1,
                3600.0,
                float,
            ),
            fetch_min_bytes=_number(
                env, "AUTOPILOT_FETCH_MIN_BYTES", cls.fetch_min_bytes, 1, 16 * 1024 * 1024, int
            ),
            fetch_max_wait_ms=_number(
                env, "AUTOPILOT_FETCH_MAX_WAIT_MS", cls.fetch_max_wait_ms, 0, 1500, int
            ),
            gc_thresholds=_gc_thresholds(env),
            regions_path=regions_path,
            prices_path=prices_path,
            budgets_path=budgets_path,
            plugins_path=plugins_path,
            pseudonym_salt=salt,
            plugin_modules=plugin_modules,
            plugin_max_failures=_number(
                env, "AUTOPILOT_PLUGIN_MAX_FAILURES", cls.plugin_max_failures, 1, 1000, int
            ),
            otlp_encoding=otlp_encoding,
            otlp=otlp,
            **_security_from_env(env),
        )

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it: ``host:port[,host:port]``."""
        return self.broker.removeprefix("kafka://").replace(";", ",")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of broker connections; ``None`` for ``PLAINTEXT``.

        The broker's certificate is verified against :attr:`ssl_cafile` (or the
        system CAs) and must name the host connected to.

        Raises
        ------
        SettingsError
            If the CA, certificate or key file is not PEM that OpenSSL accepts.
        """
        from aiokafka.helpers import create_ssl_context

        if self.security_protocol == "PLAINTEXT":
            return None
        try:
            context = create_ssl_context(cafile=self.ssl_cafile)
        except ssl.SSLError as exc:
            raise SettingsError(
                f"AUTOPILOT_SSL_CAFILE: {self.ssl_cafile}: not a PEM CA certificate ({exc.reason})"
            ) from None
        if self.ssl_certfile is not None:
            try:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            except ssl.SSLError as exc:
                raise SettingsError(
                    f"AUTOPILOT_SSL_CERTFILE/KEYFILE: {self.ssl_certfile}: not a PEM "
                    f"certificate with its key ({exc.reason})"
                ) from None
        return context

    def aiokafka_security_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make an aiokafka client connect as this worker does.

        Empty for ``PLAINTEXT``, so plain clients keep aiokafka's defaults.

        Examples
        --------
        >>> Settings().aiokafka_security_kwargs()
        {}
        >>> kwargs = Settings.from_env({
        ...     "AUTOPILOT_SECURITY_PROTOCOL": "SASL_SSL",
        ...     "AUTOPILOT_SASL_USERNAME": "worker",
        ...     "AUTOPILOT_SASL_PASSWORD": "s3cret",
        ... }).aiokafka_security_kwargs()
        >>> kwargs["security_protocol"], kwargs["sasl_mechanism"], kwargs["sasl_plain_username"]
        ('SASL_SSL', 'SCRAM-SHA-512', 'worker')
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "ssl_context": self.ssl_context(),
        }
        if self.security_protocol == "SASL_SSL":
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kwargs


def _existing_file(env: Mapping[str, str], name: str) -> Path | None:
    """The file named by the env var ``name``, or ``None`` when unset."""
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(f"{name}: {path}: no such file")
    return path


def _security_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The broker security fields of :class:`Settings`, read from ``env``.

    Variables that the chosen protocol would ignore are an error rather than
    silently unused: a password set for a ``PLAINTEXT`` broker is a forgotten
    ``AUTOPILOT_SECURITY_PROTOCOL``, and a worker that then fails to connect
    would not say why.

    Examples
    --------
    >>> _security_from_env({})["security_protocol"]
    'PLAINTEXT'
    >>> _security_from_env({"AUTOPILOT_SECURITY_PROTOCOL": "SASL_SSL"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_SECURITY_PROTOCOL=SASL_SSL needs \
AUTOPILOT_SASL_USERNAME and AUTOPILOT_SASL_PASSWORD (or AUTOPILOT_SASL_PASSWORD_FILE)
    >>> _security_from_env({"AUTOPILOT_SASL_USERNAME": "worker"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_SASL_USERNAME is set but \
AUTOPILOT_SECURITY_PROTOCOL=PLAINTEXT does not use it (SASL needs SASL_SSL)
    >>> _security_from_env(
    ...     {"AUTOPILOT_SECURITY_PROTOCOL": "SSL", "AUTOPILOT_SSL_CAFILE": "/no/ca.pem"}
    ... )
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_SSL_CAFILE: /no/ca.pem: no such file

    The password never shows in the settings' ``repr()``:

    >>> settings = Settings(**_security_from_env({
    ...     "AUTOPILOT_SECURITY_PROTOCOL": "sasl_ssl",
    ...     "AUTOPILOT_SASL_MECHANISM": "scram-sha-256",
    ...     "AUTOPILOT_SASL_USERNAME": "worker",
    ...     "AUTOPILOT_SASL_PASSWORD": "hunter2-secret",
    ... }))
    >>> settings.security_protocol, settings.sasl_mechanism, settings.sasl_password
    ('SASL_SSL', 'SCRAM-SHA-256', 'hunter2-secret')
    >>> "hunter2" in repr(settings), "sasl_username='worker'" in repr(settings)
    (False, True)
    """
    protocol = (env.get("AUTOPILOT_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        choices = ", ".join(SECURITY_PROTOCOLS)
        raise SettingsError(f"AUTOPILOT_SECURITY_PROTOCOL={protocol!r} is not one of {choices}")
    sasl_vars = ("AUTOPILOT_SASL_MECHANISM", "AUTOPILOT_SASL_USERNAME", "AUTOPILOT_SASL_PASSWORD",
                 "AUTOPILOT_SASL_PASSWORD_FILE")  # fmt: skip
    ssl_vars = ("AUTOPILOT_SSL_CAFILE", "AUTOPILOT_SSL_CERTFILE", "AUTOPILOT_SSL_KEYFILE")
    unused = [name for name in sasl_vars if env.get(name) and protocol != "SASL_SSL"]
    unused += [name for name in ssl_vars if env.get(name) and protocol == "PLAINTEXT"]
    if unused:
        raise SettingsError(
            f"{unused[0]} is set but AUTOPILOT_SECURITY_PROTOCOL={protocol} does not use it "
            f"({'SASL needs SASL_SSL' if unused[0] in sasl_vars else 'TLS needs SSL or SASL_SSL'})"
        )
    certfile = _existing_file(env, "AUTOPILOT_SSL_CERTFILE")
    keyfile = _existing_file(env, "AUTOPILOT_SSL_KEYFILE")
    if keyfile is not None and certfile is None:
        raise SettingsError("AUTOPILOT_SSL_KEYFILE needs AUTOPILOT_SSL_CERTFILE")
    fields: dict[str, Any] = {
        "security_protocol": protocol,
        "ssl_cafile": _existing_file(env, "AUTOPILOT_SSL_CAFILE"),
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
    }
    if protocol != "SASL_SSL":
        return fields
    mechanism = (env.get("AUTOPILOT_SASL_MECHANISM") or SASL_MECHANISMS[0]).upper()
    if mechanism not in SASL_MECHANISMS:
        raise SettingsError(
            f"AUTOPILOT_SASL_MECHANISM={mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
        )
    password = env.get("AUTOPILOT_SASL_PASSWORD") or None
    if password_file := env.get("AUTOPILOT_SASL_PASSWORD_FILE"):
        if password is not None:
            raise SettingsError(
                "set AUTOPILOT_SASL_PASSWORD or AUTOPILOT_SASL_PASSWORD_FILE, not both"
            )
        try:
            # A secret mounted from Kubernetes has no newline; one written by echo has.
            password = Path(password_file).read_text().rstrip("\r\n") or None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SettingsError(
                f"AUTOPILOT_SASL_PASSWORD_FILE: {password_file}: {reason}"
            ) from None
        if password is None:
            raise SettingsError(f"AUTOPILOT_SASL_PASSWORD_FILE: {password_file} is empty")
    username = env.get("AUTOPILOT_SASL_USERNAME") or None
    if username is None or password is None:
        raise SettingsError(
            "AUTOPILOT_SECURITY_PROTOCOL=SASL_SSL needs AUTOPILOT_SASL_USERNAME and "
            "AUTOPILOT_SASL_PASSWORD (or AUTOPILOT_SASL_PASSWORD_FILE)"
        )
    return {**fields, "sasl_mechanism": mechanism, "sasl_username": username,
            "sasl_password": password}  # fmt: skip

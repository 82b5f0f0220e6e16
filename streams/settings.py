"""Worker settings, read from ``AUTOPILOT_*`` environment variables.

Every setting has a sane default for a laptop with a local broker; nonsense
values fail fast with a :class:`SettingsError` that names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from models.cost import load_budgets, load_price_table
from models.regions import DEFAULT_REGION_CONFIG_PATH, RegionConfigError, load_region_config

__all__ = ["LOG_LEVELS", "Settings", "SettingsError"]

LOG_LEVELS = ("crit", "error", "warn", "info", "debug")
_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
DEFAULT_PRICES_PATH = DEFAULT_REGION_CONFIG_PATH.with_name("prices.toml")
DEFAULT_BUDGETS_PATH = DEFAULT_REGION_CONFIG_PATH.with_name("budgets.toml")
_BROKER_PATTERN = re.compile(
    r"^kafka://[A-Za-z0-9.\-\[\]:]+:\d{1,5}(;[A-Za-z0-9.\-\[\]:]+:\d{1,5})*$"
)


N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting has a value the worker cannot run with."""


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
    """Read a configuration file now, so that a bad one stops the worker at start-up."""
    try:
        load(path)
    except FileNotFoundError:
        raise SettingsError(f"{name}: {path}: no such file") from None
    except (OSError, ValueError, TypeError) as exc:
        # tomllib.TOMLDecodeError is a ValueError; both messages say where it went wrong.
        raise SettingsError(f"{name}: {path}: {exc}") from None


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
    streams.settings.SettingsError: AUTOPILOT_PARTITIONS='zero' is not an integer
    >>> Settings.from_env({"AUTOPILOT_REGIONS": "/nowhere/regions.toml"})
    Traceback (most recent call last):
    ...
    streams.settings.SettingsError: AUTOPILOT_REGIONS: /nowhere/regions.toml: no such region \
configuration file
    >>> Settings.from_env({"AUTOPILOT_BUDGETS": "off"}).budgets_path is None
    True
    >>> Settings.from_env({"AUTOPILOT_PRICES": "/nowhere/prices.toml"})
    Traceback (most recent call last):
    ...
    streams.settings.SettingsError: AUTOPILOT_PRICES: /nowhere/prices.toml: no such file
    >>> Settings.from_env({"AUTOPILOT_PSEUDONYM_SALT": "x" * 65})
    Traceback (most recent call last):
    ...
    streams.settings.SettingsError: AUTOPILOT_PSEUDONYM_SALT must be at most 64 bytes
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
    regions_path: Path = DEFAULT_REGION_CONFIG_PATH
    prices_path: Path = DEFAULT_PRICES_PATH
    """Instance types, prices and per-service settings of the cost engine."""
    budgets_path: Path | None = DEFAULT_BUDGETS_PATH
    """Monthly budgets; ``None`` (``AUTOPILOT_BUDGETS=off``) watches none."""
    pseudonym_salt: str = "paas-autopilot-dev"
    """Key of the tenant pseudonyms; the default is public, for development only."""

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
        # failover evaluation; the message names the file, the line and the field.
        try:
            load_region_config(regions_path)
        except RegionConfigError as exc:
            raise SettingsError(f"AUTOPILOT_REGIONS: {exc}") from None
        prices_path = Path(env.get("AUTOPILOT_PRICES") or cls.prices_path)
        _check_file("AUTOPILOT_PRICES", prices_path, load_price_table)
        budgets = env.get("AUTOPILOT_BUDGETS") or str(cls.budgets_path)
        budgets_path = None if budgets.lower() in ("off", "none") else Path(budgets)
        if budgets_path is not None:
            _check_file("AUTOPILOT_BUDGETS", budgets_path, load_budgets)
        salt = env.get("AUTOPILOT_PSEUDONYM_SALT") or cls.pseudonym_salt
        if not 0 < len(salt.encode()) <= 64:
            # BLAKE2b keys are at most 64 bytes (models.interactions_brain.pseudonym).
            raise SettingsError("AUTOPILOT_PSEUDONYM_SALT must be at most 64 bytes")
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
            regions_path=regions_path,
            prices_path=prices_path,
            budgets_path=budgets_path,
            pseudonym_salt=salt,
        )

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it: ``host:port[,host:port]``."""
        return self.broker.removeprefix("kafka://").replace(";", ",")

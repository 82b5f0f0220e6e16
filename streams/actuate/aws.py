"""The actuator's hands: the boto3 calls (and the rollback hook) that carry out planned steps.

:class:`AwsExecutor` turns a :class:`models.policy.actuation.Step` into requests and an
:class:`models.policy.actuation.Execution`: it never raises, because a failed action is a
fact for the audit topic, not a reason to stop the worker. botocore's own retries
are switched off so that :class:`schemas.config.actuation.RetryPolicy` alone decides what is
sent again, and every request sent is counted in the audit record.

Credentials come from boto3's standard chain (environment, shared config and
credentials files, SSO, container and instance roles); nothing here reads, logs or
passes them on, and error messages are truncated before they reach a log or the
audit. ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), honoured natively by
boto3 since 1.28.57, points every client at another endpoint, e.g. a moto server in tests.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from models.policy.actuation import (
    Execution,
    Step,
    drained_weights,
    restored_weights,
    shifted_weights,
    weight_changes,
)
from schemas.config.actuation import ActuationConfig, ActuationConfigError, load_actuation_config
from streams.runtime.settings import SettingsError

__all__ = ["ActuatorSettings", "AwsExecutor"]

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Long enough for one slow AWS answer, short enough that a hung endpoint is retried
# (or reported) before the worker's consumer stalls for long.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="paas-autopilot-actuator",
)
# Route 53 is a global service, signed for us-east-1 whatever region the worker is in.
_GLOBAL_REGION = "us-east-1"
_MAX_MESSAGE_CHARS = 300


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not one of on/off, true/false, 1/0, yes/no")


@dataclass(frozen=True)
class ActuatorSettings:
    """Whether the actuator runs, whether it only pretends, and where its mapping file is.

    Examples
    --------
    >>> ActuatorSettings.from_env({})
    ActuatorSettings(enabled=False, dry_run=True, config_path=None)
    >>> ActuatorSettings.from_env({"AUTOPILOT_ACTUATOR": "on"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_ACTUATOR_CONFIG must name the mapping file ...
    """

    enabled: bool = False
    dry_run: bool = True
    config_path: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ActuatorSettings:
        """Read ``AUTOPILOT_ACTUATOR``, ``AUTOPILOT_ACTUATOR_DRY_RUN`` and ``..._CONFIG``."""
        env = os.environ if env is None else env
        enabled = _flag(env, "AUTOPILOT_ACTUATOR", False)
        dry_run = _flag(env, "AUTOPILOT_ACTUATOR_DRY_RUN", True)
        raw_path = env.get("AUTOPILOT_ACTUATOR_CONFIG") or None
        if enabled and raw_path is None:
            raise SettingsError(
                "AUTOPILOT_ACTUATOR_CONFIG must name the mapping file when AUTOPILOT_ACTUATOR=on"
            )
        return cls(enabled, dry_run, Path(raw_path) if raw_path else None)

    def load_config(self) -> ActuationConfig:
        """The mapping file, parsed; a bad one is a :class:`SettingsError` naming the variable."""
        if self.config_path is None:
            raise SettingsError("AUTOPILOT_ACTUATOR_CONFIG is not set")
        try:
            return load_actuation_config(self.config_path)
        except ActuationConfigError as exc:
            raise SettingsError(f"AUTOPILOT_ACTUATOR_CONFIG: {exc}") from None


class _CallFailed(Exception):
    """A request failed for good: its error code, a short message and AWS's request id."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message[:_MAX_MESSAGE_CHARS]
        self.request_id = request_id


def _request_id(response: Mapping[str, Any]) -> str | None:
    return response.get("ResponseMetadata", {}).get("RequestId") or None


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


class AwsExecutor:
    """Carry out steps with boto3 (and the rollback hook), retrying as the policy says.

    Parameters
    ----------
    config
        The mapping file: the retry policy, ARC endpoints and the rollback hook.
    session
        The boto3 session whose credential chain signs the requests (default: a new one).
    sleep, jitter
        Injected for tests: how to wait between attempts, and a source of [0, 1) jitter.
    """

    def __init__(
        self,
        config: ActuationConfig,
        *,
        session: boto3.session.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.session = session or boto3.session.Session()
        self.sleep = sleep
        self.jitter = jitter
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        # boto3 sessions are not thread-safe, and steps run in worker threads.
        self._lock = threading.Lock()

    def client(self, api: str, region: str | None, endpoint_url: str | None = None) -> Any:
        """A cached boto3 client for ``api`` in ``region`` (default: the global region)."""
        key = (api, region or _GLOBAL_REGION, endpoint_url)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    api, region_name=key[1], endpoint_url=endpoint_url, config=_CLIENT_CONFIG
                )
            return self._clients[key]

    def execute(self, step: Step) -> Execution:
        """Make ``step``'s call(s): ``applied`` or ``failed``, never an exception."""
        tally = [0]
        try:
            if step.api == "autoscaling":
                return self._autoscaling(step, tally)
            if step.api == "ecs":
                return self._ecs(step, tally)
            if step.api == "route53":
                return self._route53(step, tally)
            if step.api == "route53-recovery-cluster":
                return self._arc(step, tally)
            if step.api == "ssm":
                return self._ssm(step, tally)
            return self._hook(step, tally)
        except _CallFailed as failure:
            log.warning(
                "actuator: %s.%s on %s failed: %s after %d attempt(s)",
                step.api, step.operation, step.resource, failure.code, tally[0],
            )  # fmt: skip
            return Execution(
                "failed",
                f"{step.api}.{step.operation} failed with {failure.code}: {failure.message}",
                failure.request_id,
                tally[0],
                failure.code,
            )
        except Exception as exc:
            # A bug here must cost one decision, not the worker: it is audited as failed.
            log.exception("actuator: unexpected error on %s", step.resource)
            return Execution(
                "failed", f"Unexpected {type(exc).__name__}.", None, tally[0], type(exc).__name__
            )

    def _retrying(self, call: Callable[[int], Any], idempotent: bool, tally: list[int]) -> Any:
        """``call(attempt)`` until it succeeds, or :class:`_CallFailed` once the policy gives up."""
        policy = self.config.retry
        attempt = 0
        while True:
            attempt += 1
            tally[0] += 1
            try:
                return call(attempt)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                failure = _CallFailed(
                    error.get("Code") or "ClientError",
                    error.get("Message") or "",
                    _request_id(exc.response),
                )
            except BotoCoreError as exc:
                failure = _CallFailed(type(exc).__name__, str(exc))
            except _CallFailed as exc:
                failure = exc
            if not policy.should_retry(failure.code, attempt, idempotent):
                raise failure
            self.sleep(policy.delay(attempt, self.jitter()))

    def _autoscaling(self, step: Step, tally: list[int]) -> Execution:
        client = self.client("autoscaling", step.aws_region)
        if step.operation == "add_capacity":
            return self._add_asg_capacity(client, step, tally)
        name, desired = step.params["AutoScalingGroupName"], step.params["DesiredCapacity"]
        if step.reconciling:
            groups = self._retrying(
                lambda _: client.describe_auto_scaling_groups(AutoScalingGroupNames=[name]),
                True,
                tally,
            )["AutoScalingGroups"]
            if groups and groups[0]["DesiredCapacity"] == desired:
                return Execution(
                    "applied",
                    f"Desired capacity of {name} already {desired}: set before the worker "
                    "restarted (reconciled, not called again).",
                    None,
                    tally[0],
                )
        response = self._retrying(
            lambda _: client.set_desired_capacity(**step.params), step.idempotent, tally
        )
        return Execution(
            "applied",
            f"Desired capacity of {step.params['AutoScalingGroupName']} set to "
            f"{step.params['DesiredCapacity']}.",
            _request_id(response),
            tally[0],
        )

    def _add_asg_capacity(self, client: Any, step: Step, tally: list[int]) -> Execution:
        """Desired capacity raised by ``Add`` from what it is now, within the group's maximum."""
        name = step.params["AutoScalingGroupName"]
        groups = self._retrying(
            lambda _: client.describe_auto_scaling_groups(AutoScalingGroupNames=[name]), True, tally
        )["AutoScalingGroups"]
        if not groups:
            raise _CallFailed("ValidationError", f"no Auto Scaling group {name}")
        current, ceiling = groups[0]["DesiredCapacity"], groups[0]["MaxSize"]
        desired = min(ceiling, current + step.params["Add"])
        response = self._retrying(
            lambda _: client.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=desired, HonorCooldown=False
            ),
            False,
            tally,
        )
        return Execution(
            "applied",
            f"Desired capacity of {name} raised from {current} to {desired} (max {ceiling}).",
            _request_id(response),
            tally[0],
        )

    def _add_ecs_capacity(self, client: Any, step: Step, tally: list[int]) -> Execution:
        """Desired count raised by ``Add`` from what it is now."""
        cluster, service = step.params["cluster"], step.params["service"]
        found = self._retrying(
            lambda _: client.describe_services(cluster=cluster, services=[service]), True, tally
        )["services"]
        if not found:
            raise _CallFailed("ServiceNotFoundException", f"no ECS service {cluster}/{service}")
        current = found[0]["desiredCount"]
        desired = current + step.params["Add"]
        response = self._retrying(
            lambda _: client.update_service(cluster=cluster, service=service, desiredCount=desired),
            False,
            tally,
        )
        return Execution(
            "applied",
            f"Desired count of {cluster}/{service} raised from {current} to {desired}.",
            _request_id(response),
            tally[0],
        )

    def _ssm(self, step: Step, tally: list[int]) -> Execution:
        client = self.client("ssm", step.aws_region)
        # Sent once unless SSM rejected it unread: a repeat would run the document again.
        response = self._retrying(
            lambda _: client.send_command(**step.params), step.idempotent, tally
        )
        command_id = response.get("Command", {}).get("CommandId")
        target = step.params["Targets"][0]
        return Execution(
            "applied",
            f"Sent {step.params['DocumentName']} to instances with {target['Key']}="
            f"{target['Values'][0]} (command {command_id}).",
            _request_id(response),
            tally[0],
        )

    def _ecs(self, step: Step, tally: list[int]) -> Execution:
        client = self.client("ecs", step.aws_region)
        if step.operation == "add_capacity":
            return self._add_ecs_capacity(client, step, tally)
        response = self._retrying(
            lambda _: client.update_service(**step.params), step.idempotent, tally
        )
        name = f"{step.params['cluster']}/{step.params['service']}"
        if step.params.get("forceNewDeployment"):
            done = f"Forced a new deployment of {name}."
        else:
            done = f"Desired count of {name} set to {step.params['desiredCount']}."
        return Execution("applied", done, _request_id(response), tally[0])

    def _weighted_sets(
        self, client: Any, zone: str, name: str, rtype: str, tally: list[int]
    ) -> list[dict[str, Any]]:
        """The weighted record sets of ``name``/``rtype`` in ``zone``, every page of them."""
        found: list[dict[str, Any]] = []
        start: dict[str, str] = {"StartRecordName": name, "StartRecordType": rtype}
        while True:
            page = self._retrying(
                lambda _, s=start: client.list_resource_record_sets(HostedZoneId=zone, **s),
                True,
                tally,
            )
            for record_set in page["ResourceRecordSets"]:
                if _fqdn(record_set["Name"]) != _fqdn(name) or record_set["Type"] != rtype:
                    return found
                if "Weight" in record_set and "SetIdentifier" in record_set:
                    found.append(record_set)
            if not page.get("IsTruncated"):
                return found
            start = {
                "StartRecordName": page["NextRecordName"],
                "StartRecordType": page["NextRecordType"],
            }
            if "NextRecordIdentifier" in page:
                start["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _route53(self, step: Step, tally: list[int]) -> Execution:
        client = self.client("route53", None)
        zone = step.params["HostedZoneId"]
        changes: list[dict[str, Any]] = []
        outcome: list[str] = []
        for entry in step.params["records"]:
            sets = self._weighted_sets(client, zone, entry["name"], entry["type"], tally)
            current = {s["SetIdentifier"]: s["Weight"] for s in sets}
            reweight = step.params["reweight"]
            if reweight == "drain_region":
                needed = [entry["from"]]
            else:
                needed = [entry["to"]] + ([entry["from"]] if reweight == "shift_traffic" else [])
            missing = [set_id for set_id in needed if set_id not in current]
            if missing:
                raise _CallFailed(
                    "RecordSetNotFound",
                    f"{entry['name']} {entry['type']} has no weighted set {', '.join(missing)}",
                )
            if reweight == "drain_region":
                weights = drained_weights(current, entry["from"])
                if not any(weights.values()):
                    raise _CallFailed(
                        "NoRegionLeft",
                        f"{entry['name']} {entry['type']}: no other set has weight to take the "
                        "traffic",
                    )
            elif reweight == "shift_traffic":
                weights = shifted_weights(current, entry["from"], entry["to"])
            else:
                weights = restored_weights(current, entry["normal"], entry["to"], entry["from"])
            changes += weight_changes(sets, weights)
            shown = ", ".join(f"{k} {v}" for k, v in sorted(weights.items()))
            outcome.append(f"{entry['name']} {entry['type']}: {shown}")
        if not changes:
            return Execution(
                "applied", f"Weights already as decided: {'; '.join(outcome)}.", None, tally[0]
            )
        batch = {"Comment": "paas-autopilot failover", "Changes": changes}
        response = self._retrying(
            lambda _: client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch),
            step.idempotent,
            tally,
        )
        return Execution(
            "applied", f"Weights set: {'; '.join(outcome)}.", _request_id(response), tally[0]
        )

    def _arc(self, step: Step, tally: list[int]) -> Execution:
        assert self.config.arc is not None
        endpoints = self.config.arc.endpoints

        def update(attempt: int) -> Any:
            # ARC asks clients to try another cluster endpoint when one does not answer.
            endpoint = endpoints[(attempt - 1) % len(endpoints)]
            client = self.client("route53-recovery-cluster", endpoint.region, endpoint.url)
            return client.update_routing_control_states(**step.params)

        response = self._retrying(update, step.idempotent, tally)
        states = ", ".join(
            f"{e['RoutingControlArn'].rsplit('/', 1)[-1]} {e['RoutingControlState']}"
            for e in step.params["UpdateRoutingControlStateEntries"]
        )
        return Execution(
            "applied", f"Routing controls set: {states}.", _request_id(response), tally[0]
        )

    def _hook(self, step: Step, tally: list[int]) -> Execution:
        hook = self.config.rollback
        assert hook is not None
        params = {k: str(v) for k, v in step.params.items()}
        where = f"{params['service']} in {params['region']}"
        if hook.command is not None:
            # Run once: a command gives no sign that it did nothing, so it is never repeated.
            tally[0] += 1
            status = self._run_command(hook.command, hook.timeout_s, params)
            return Execution(
                "applied", f"Rollback hook ran for {where} (exit {status}).", None, tally[0]
            )
        assert hook.url is not None
        url = hook.url
        request_id = self._retrying(lambda _: self._post(url, hook.timeout_s, params), False, tally)
        return Execution("applied", f"Rollback hook accepted for {where}.", request_id, tally[0])

    @staticmethod
    def _run_command(command: tuple[str, ...], timeout_s: float, params: Mapping[str, str]) -> int:
        """Run the hook's argv (placeholders filled in, no shell); its output is discarded."""
        argv = [
            arg.replace("{service}", params["service"])
            .replace("{region}", params["region"])
            .replace("{decision_id}", params["decision_id"])
            for arg in command
        ]
        env = {
            **os.environ,
            "AUTOPILOT_SERVICE": params["service"],
            "AUTOPILOT_REGION": params["region"],
            "AUTOPILOT_DECISION_ID": params["decision_id"],
        }
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _CallFailed("timeout", f"rollback hook ran over {timeout_s:g} s") from None
        except OSError as exc:
            raise _CallFailed("hook_not_runnable", exc.strerror or type(exc).__name__) from None
        if proc.returncode != 0:
            raise _CallFailed(
                f"exit_{proc.returncode}", f"rollback hook exited with status {proc.returncode}"
            )
        return proc.returncode

    @staticmethod
    def _post(url: str, timeout_s: float, params: Mapping[str, str]) -> str | None:
        """POST the decision's subject and id to the hook URL; its request id, if it sends one."""
        request = urllib.request.Request(
            url,
            data=orjson.dumps(params),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "paas-autopilot-actuator"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.headers.get("X-Request-Id")
        except urllib.error.HTTPError as exc:
            raise _CallFailed(
                f"http_{exc.code}", f"rollback hook answered HTTP {exc.code}"
            ) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                raise _CallFailed("hook_unreachable", "connection refused") from None
            if isinstance(exc.reason, TimeoutError):
                raise _CallFailed("timeout", f"no answer in {timeout_s:g} s") from None
            raise _CallFailed("hook_error", str(exc.reason)) from None
        except TimeoutError:
            raise _CallFailed("timeout", f"no answer in {timeout_s:g} s") from None

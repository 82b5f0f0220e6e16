"""A moto server (AWS in server mode, a real HTTP endpoint) for the actuator's tests."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import orjson
import pytest

from streams.kafka.local import free_port
from tests.conftest import wait_until

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
SECRET = "actuator-test-secret-0123456789"


class MotoServer:
    """``moto_server`` on a free local port, as a subprocess of the test session."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Where moto's request recorder writes, when recording: beside the log, not in the cwd.
        recording = log_path.with_name(f"{log_path.stem}-recording.jsonl")
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                env={**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, 30, f"moto_server did not answer on {self.url}")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"moto_server exited with {self.proc.returncode}")
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2):
            return True

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def _moto_api(self, path: str) -> bytes:
        request = urllib.request.Request(f"{self.url}/moto-api/{path}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def record(self) -> None:
        """Record every AWS request from now on, forgetting those recorded before."""
        self._moto_api("recorder/reset-recording")
        self._moto_api("recorder/start-recording")

    def recorded(self) -> list[tuple[str, dict[str, list[str]]]]:
        """(URL, form fields) of every AWS request recorded: what really reached the server.

        Query-protocol APIs (Auto Scaling, EC2) carry the operation and its arguments as
        form fields: ``Action``, ``AutoScalingGroupName``...
        """
        found = []
        for line in self._moto_api("recorder/download-recording").decode().splitlines():
            entry = orjson.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode(errors="replace")
            found.append((entry["url"], urllib.parse.parse_qs(body)))
        return found

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server, and to no real AWS account."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A fresh moto account, and this process's boto3 pointed at it."""
    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


def make_asg(name: str, desired: int, region: str = "us-east-1") -> None:
    template = f"lt-{name}"
    boto3.client("ec2", region_name=region).create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    boto3.client("autoscaling", region_name=region).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=0,
        MaxSize=100,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{region}a"],
    )


def set_asg_desired(name: str, desired: int, region: str = "us-east-1") -> None:
    boto3.client("autoscaling", region_name=region).set_desired_capacity(
        AutoScalingGroupName=name, DesiredCapacity=desired
    )


def asg_desired(name: str, region: str = "us-east-1") -> int:
    client = boto3.client("autoscaling", region_name=region)
    [group] = client.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return group["DesiredCapacity"]

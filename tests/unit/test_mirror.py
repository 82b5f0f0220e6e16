"""Several local clusters by name, and the MirrorMaker 2 configuration between them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas.topics import TopicNames
from streams.cli.kafka import kafka
from streams.cli.mirror import mirror
from streams.kafka.local import KafkaLocalError, named_broker
from streams.kafka.mirror import IDENTITY_POLICY, MirrorFlow, MirrorMaker, hub_flows

CLUSTERS = {"us-east": "127.0.0.1:1", "eu-west": "127.0.0.1:2", "global": "127.0.0.1:3"}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path / "paas-autopilot"


def test_named_clusters_keep_their_own_port_and_data_dir(state: Path) -> None:
    east, west = named_broker("us-east"), named_broker("eu-west")
    assert east.port != west.port and east.data_dir != west.data_dir
    assert named_broker("us-east").port == east.port
    assert east.data_dir == state / "kafka-us-east"
    assert "Kafka cluster us-east is not running" in east.status()


@pytest.mark.parametrize("name", ["", "US-East", "us east", "-us", "a" * 32, "us.east"])
def test_a_cluster_name_must_be_a_plain_slug(name: str) -> None:
    with pytest.raises(KafkaLocalError, match="lower-case letters"):
        named_broker(name)


def test_status_of_a_named_cluster_that_does_not_run_exits_3(state: Path) -> None:
    result = CliRunner().invoke(kafka, ["status", "--name", "eu-west"])
    assert result.exit_code == 3
    assert "Kafka cluster eu-west is not running" in result.output


def test_inputs_flow_to_the_hub_and_decisions_back_and_nothing_else() -> None:
    topics = TopicNames("p.")
    props = MirrorMaker(CLUSTERS, hub_flows(["us-east", "eu-west"], "global", topics)).properties()
    assert props["replication.policy.class"] == IDENTITY_POLICY
    pair = re.compile(r"([^.]+->[^.]+)\.enabled")
    enabled = {m[1] for k, v in props.items() if (m := pair.fullmatch(k)) and v == "true"}
    assert enabled == {"us-east->global", "eu-west->global", "global->us-east", "global->eu-west"}
    # The regions do not copy to each other: no herder, so no heartbeats either.
    assert props["us-east->eu-west.enabled"] == "false"
    assert props["us-east->eu-west.emit.heartbeats.enabled"] == "false"
    inputs = props["us-east->global.topics"].split(", ")
    assert [re.fullmatch(p, "p.telemetry.metrics") is not None for p in inputs].count(True) == 1
    assert not any(re.fullmatch(p, "pXtelemetry.metrics") for p in inputs)
    assert not any(re.fullmatch(p, "p.decisions.failover") for p in inputs)
    back = props["global->eu-west.topics"].split(", ")
    assert any(re.fullmatch(p, "p.decisions.failover") for p in back)
    assert not any(re.fullmatch(p, "p.telemetry.metrics") for p in back)


def test_no_topic_may_flow_both_ways() -> None:
    with pytest.raises(KafkaLocalError, match="cannot also be a region"):
        hub_flows(["us-east", "global"], "global", TopicNames())
    with pytest.raises(KafkaLocalError, match="named twice"):
        hub_flows(["us-east", "us-east"], "global", TopicNames())


def test_a_flow_must_name_known_clusters() -> None:
    with pytest.raises(KafkaLocalError, match="'ap-south', not a cluster"):
        MirrorMaker(CLUSTERS, [MirrorFlow("ap-south", "global", ("t",))])


def test_a_flow_counts_as_started_once_its_task_copies(tmp_path: Path) -> None:
    maker = MirrorMaker(CLUSTERS, hub_flows(["us-east"], "global", TopicNames()), data_dir=tmp_path)
    maker.log_file.parent.mkdir(parents=True)
    maker.log_file.write_text(
        "INFO Started MirrorSourceConnector with 25 topic-partitions.\n"
        "INFO task-thread-MirrorSourceConnector-0 replicating 25 topic-partitions "
        "us-east->global: [telemetry.metrics-0]. (org.apache.kafka.connect.mirror...)\n"
    )
    assert maker._flows_copying(0) == {"us-east->global"}


def test_status_names_the_flows_of_the_running_configuration(tmp_path: Path) -> None:
    maker = MirrorMaker(CLUSTERS, hub_flows(["us-east"], "global", TopicNames()), data_dir=tmp_path)
    assert maker.status() == f"MirrorMaker is not running (data dir {tmp_path})"
    result = CliRunner().invoke(mirror, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 3


def test_start_names_the_cluster_that_does_not_run(state: Path) -> None:
    result = CliRunner().invoke(mirror, ["start", "--hub", "global", "--region", "us-east"])
    assert result.exit_code == 2
    assert "autopilot kafka start --name" in result.output
    assert "--cluster global=HOST:PORT" in result.output

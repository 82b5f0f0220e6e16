"""The shared reading of the TOML configuration files: errors name the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config.actuation import ActuationConfigError, parse_actuation_config
from schemas.config.toml import ConfigError, Value, from_mapping, load, parse

MAPPING = """\
[failover.route53]
hosted_zone_id = "Z1"

[[failover.route53.records]]
name = "a.example.com."
type = "A"
set_identifiers = { us-east = "a-use1" }
weights = { us-east = 100 }

[[failover.route53.records]]
name = "b.example.com."
type = "A"
set_identifiers = { us-east = "b-use1" }
weights = { us-east = 300 }

[rate_limit.resources."route53:*"]
max_actions = 1
window_s = 0
"""


def test_the_second_table_of_an_array_is_located_and_numbered() -> None:
    with pytest.raises(ActuationConfigError) as caught:
        parse_actuation_config(MAPPING, "m.toml")
    assert str(caught.value) == (
        "m.toml:14: failover.route53.records[1].weights.us-east: must be in [0, 255], got 300"
    )
    assert (caught.value.line, caught.value.source) == (14, "m.toml")
    assert caught.value.path == ("failover", "route53", "records", 1, "weights", "us-east")


def test_quoted_keys_are_located_and_quoted_back() -> None:
    text = MAPPING.replace("us-east = 300", "us-east = 30")
    with pytest.raises(ActuationConfigError) as caught:
        parse_actuation_config(text, "m.toml")
    assert str(caught.value) == (
        'm.toml:18: rate_limit.resources."route53:*".window_s: must be in [1, 604800], got 0'
    )


def test_a_syntax_error_names_the_line_and_the_key() -> None:
    text = MAPPING.replace('type = "A"\nset_identifiers = { us-east = "b', 'type = "A\nset_')
    with pytest.raises(ActuationConfigError, match=r"^m\.toml:12: failover\.route53\.records\[1\]"):
        parse_actuation_config(text, "m.toml")


def test_a_missing_key_points_at_its_table() -> None:
    with pytest.raises(ConfigError) as caught:
        parse('\n[server]\nhost = "a"\n', lambda doc: doc.table().required("server").table()
              .required("port").number(), source="s.toml")  # fmt: skip
    assert str(caught.value) == "s.toml:2: server.port: is required"


def test_a_decoded_document_has_no_lines() -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping({"port": "80"}, lambda doc: doc.table().required("port").number(), source="x")
    assert str(caught.value) == "x: port: must be a number, got the string '80'"


@pytest.mark.parametrize(
    ("raw", "check", "problem"),
    [
        (True, lambda v: v.number(), "must be a number, got a boolean"),
        (float("inf"), lambda v: v.number(), "must be finite, got inf"),
        (2, lambda v: v.number(2, low_open=True), "must be > 2, got 2"),
        (1.0, lambda v: v.number(0, 1, high_open=True), "must be in [0, 1), got 1.0"),
        ("", lambda v: v.string(), "must be a non-empty string, got the string ''"),
        (["a"], lambda v: v.table(), "must be a table, got an array"),
        ([], lambda v: v.array("names", non_empty=True), "must be a non-empty array of names"),
        ({"b": 1}, lambda v: v.table(("a",)), "unknown key (allowed: a)"),
        ("yes", lambda v: v.boolean(), "must be true or false, got the string 'yes'"),
    ],
)
def test_each_getter_says_what_is_wrong(raw: object, check, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check(Value(raw, ("a",)))
    assert caught.value.problem.startswith(problem), caught.value.problem


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: cannot read: Is a directory$"):
        load(tmp_path, lambda doc: doc)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not UTF-8 text$"):
        load(latin, lambda doc: doc)

"""Redaction of personal data and secrets: each pattern with positive and negative cases."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.text.redact import PLACEHOLDERS, Redactor, luhn_valid
from tests.support.simulated import all_fault_error_events

R = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ann.lee+shop@example.com now", "mail <EMAIL> now"),
        ("from O'Brien <bob_smith12@mail.test>", "from O'Brien <<EMAIL>>"),
        ("user@sub.example.co.uk", "<EMAIL>"),
    ],
)
def test_email_is_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "git@github without a dot",
        "pip install pkg@1.2.3",
        "an @mention and a lone @",
        "foo@bar.1",
    ],
)
def test_not_an_email(text):
    assert R.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect to 10.0.0.1:5432 failed", "connect to <IP>:5432 failed"),
        ("from [173.234.31.186] and /10.10.34.11:45307", "from [<IP>] and /<IP>:45307"),
        ("rhost=218.188.2.4", "rhost=<IP>"),
        ("bind 0.0.0.0, then 255.255.255.255.", "bind <IP>, then <IP>."),
        ("v6 [2001:db8::1]:443", "v6 [<IP>]:443"),
        ("loopback ::1 and fe80::1%eth0", "loopback <IP> and <IP>"),
        ("mapped ::ffff:10.1.2.3", "mapped <IP>"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full <IP>"),
    ],
)
def test_ip_addresses_are_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "running v1.2.3.4 now",
        "release 1.2.3 is out",
        "build 1.2.3.4-beta",
        "artifact 1.2.3.4.5",
        "bad octets 256.1.1.1 and 01.2.3.4",
        "at 12:30:45 local time",
        "mac 00:1a:2b:3c:4d:5e",
        "std::vector and Foo::bar",
    ],
)
def test_not_an_ip(text):
    assert R.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("charge 4111 1111 1111 1111 failed", "charge <CARD> failed"),
        ("card=4111-1111-1111-1111;", "card=<CARD>;"),
        ("amex 3782 822463 10005 ok", "amex <CARD> ok"),
        ("mc 5555555555554444", "mc <CARD>"),
        ("qty 12 4111 1111 1111 1111 and 5555555555554444 7", "qty 12 <CARD> and <CARD> 7"),
    ],
)
def test_card_numbers_are_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 failed",  # fails the Luhn check
        "order ord-4111111111111111 failed",  # an order id: part of a token
        "block blk_-6952295868487656571",
        "epoch ms 1700000000000",  # starts with 1: no card network
        "amount 1234.5678",
        "short 4111 1111",
    ],
)
def test_not_a_card(text):
    assert R.redact(text) == text


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer <TOKEN>"),
        ("auth basic dXNlcjpwYXNzMTIz", "auth basic <TOKEN>"),
        ("login password=hunter2 ok", "login password=<TOKEN> ok"),
        (
            '{"password": "my secret pw", "api_key":"zz9"}',
            '{"password": "<TOKEN>", "api_key":"<TOKEN>"}',
        ),
        ("db_password=x&user=ann", "db_password=<TOKEN>&user=ann"),
        ("client_secret: s3cr3t", "client_secret: <TOKEN>"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=<TOKEN>"),
        ("token=abcdef0123456789abcd", "token=<TOKEN>"),
        ("X-Session: 9f8e7d6c5b4a39281706", "X-Session: <TOKEN>"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "key <TOKEN> leaked"),
        ("gh ghp_123456789012345678901234567890123456", "gh <TOKEN>"),
        ("slack xoxb-123456789012-abcdefghij", "slack <TOKEN>"),
        (
            "postgres://admin:s3cret@db.example.com:5432/x",
            "postgres://<TOKEN>@db.example.com:5432/x",
        ),
    ],
)
def test_tokens_and_secrets_are_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bearer authentication failed",
        "Basic Authentication required",
        "missing key 'currency' in cart",
        "key=order_items_by_customer",  # a long value, but no digit: a name, not a secret
        "token expired, please log in",
        "tokens=5 passwordless=true",
        "monkey=1234567890abcdef1234",
        "session=abc",
    ],
)
def test_not_a_secret(text):
    assert R.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gF",
            "jwt <JWT>",
        ),
        ("unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. end", "unsigned <JWT> end"),
    ],
)
def test_jwt_is_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize("text", ["eyJ alone", "eyJhbGciOiJIUzI1NiJ9 only a header", "a.b.c"])
def test_not_a_jwt(text):
    assert R.redact(text) == text


def test_extra_patterns_apply_first_and_literally():
    r = Redactor([(r"\bcust-\d+", "<CUSTOMER>"), (r"\+44 \d{2} \d{4} \d{4}", r"<PHONE\1>")])
    assert r.redact("cust-0042 called from +44 20 7946 0123") == "<CUSTOMER> called from <PHONE\\1>"
    # Built-in patterns still apply after the extra ones.
    assert r.redact("cust-7 at ann@example.com") == "<CUSTOMER> at <EMAIL>"


def test_shape_is_kept_so_messages_still_group():
    a = R.redact("order ord-1 for ann@example.com from 10.0.0.1 failed")
    b = R.redact("order ord-1 for bo.li@mail.test from 10.9.8.7 failed")
    assert a == b == "order ord-1 for <EMAIL> from <IP> failed"


def test_simulator_messages_leave_no_personal_data():
    messages = [event["message"] for event in all_fault_error_events()]
    assert len(messages) > 500
    for message in messages:
        out = R.redact(message)
        assert "@" not in out
        assert not re.search(r"\b10\.\d+\.\d+\.\d+\b", out)


@given(st.text(alphabet=st.sampled_from("ab1@.:- =x4"), max_size=40))
def test_redaction_is_idempotent(text):
    once = R.redact(text)
    assert R.redact(once) == once


@given(st.text(max_size=60))
def test_placeholders_survive_redaction(text):
    for placeholder in PLACEHOLDERS:
        assert placeholder in R.redact(f"{text}; {placeholder} end")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("phone +4420794600123", "phone <PHONE>"),  # a phone number, not a card
        ("call (415) 555-2671 or 415-555-2671", "call <PHONE> or <PHONE>"),
        ("UK 020 7946 0958", "UK <PHONE>"),
        ("iban DE89 3704 0044 0532 0130 00.", "iban <IBAN>."),
        ("iban DE89370400440532013000", "iban <IBAN>"),
    ],
)
def test_phones_and_ibans_are_redacted(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "iban DE89 3704 0044 0532 0130 01",  # fails mod 97
        "at 2024-01-05 12:30:45",
        "version 01 23 45",
        "retry +3 times",
        "f(x) at line 12 (col 3)",
    ],
)
def test_not_a_phone_or_iban(text):
    assert R.redact(text) == text


def test_scan_counts_tokens_by_kind():
    counts = R.scan(
        "AKIAIOSFODNN7EXAMPLE and Authorization: Bearer abc123def456 and api_key=s3cr3t"
    ).counts
    assert counts == {"aws_key": 1, "bearer": 1, "api_key": 1}

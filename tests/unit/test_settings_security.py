"""Broker security settings: parsing, the TLS context, the Faust credentials, no secret shown."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
from pathlib import Path

import pytest
from faust.types.auth import AuthProtocol

from streams.kafka.local import BrokerSecurity, KafkaLocal, KafkaLocalError
from streams.runtime.app import broker_credentials
from streams.runtime.settings import Settings, SettingsError
from tests.conftest import AUTOPILOT
from tests.support.tls import make_ca

SASL = {
    "AUTOPILOT_SECURITY_PROTOCOL": "SASL_SSL",
    "AUTOPILOT_SASL_USERNAME": "worker",
}


def test_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("pa ss\n")
    settings = Settings.from_env({**SASL, "AUTOPILOT_SASL_PASSWORD_FILE": str(secret)})
    assert settings.sasl_password == "pa ss"
    assert "pa ss" not in repr(settings)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"AUTOPILOT_SASL_PASSWORD": "in-env", "AUTOPILOT_SASL_PASSWORD_FILE": "/etc/hostname"},
            "set AUTOPILOT_SASL_PASSWORD or AUTOPILOT_SASL_PASSWORD_FILE, not both",
        ),
        (
            {"AUTOPILOT_SASL_PASSWORD_FILE": "/nowhere/password"},
            "AUTOPILOT_SASL_PASSWORD_FILE: /nowhere/password: No such file or directory",
        ),
        (
            {"AUTOPILOT_SASL_PASSWORD": "in-env", "AUTOPILOT_SASL_MECHANISM": "GSSAPI"},
            "AUTOPILOT_SASL_MECHANISM='GSSAPI' is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN",
        ),
        (
            {"AUTOPILOT_SASL_PASSWORD": "in-env", "AUTOPILOT_SSL_KEYFILE": "/etc/hostname"},
            "AUTOPILOT_SSL_KEYFILE needs AUTOPILOT_SSL_CERTFILE",
        ),
    ],
)
def test_bad_sasl_settings_name_the_variable(extra: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**SASL, **extra})
    assert str(caught.value) == message


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings.from_env({**SASL, "AUTOPILOT_SASL_PASSWORD_FILE": str(secret)})


def test_tls_context_trusts_the_custom_ca_and_checks_the_host(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    settings = Settings.from_env(
        {"AUTOPILOT_SECURITY_PROTOCOL": "ssl", "AUTOPILOT_SSL_CAFILE": str(ca.cert)}
    )
    context = settings.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(part[0] for part in c["subject"]) for c in context.get_ca_certs()]
    assert {"commonName": "autopilot-test-ca"} in subjects
    kwargs = settings.aiokafka_security_kwargs()
    assert kwargs["security_protocol"] == "SSL" and "sasl_mechanism" not in kwargs
    credentials = broker_credentials(settings)
    assert credentials is not None and credentials.protocol is AuthProtocol.SSL


def test_client_certificate_for_mutual_tls_must_match_its_key(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    ca.broker(tmp_path / "client", password="unused")
    env = {
        "AUTOPILOT_SECURITY_PROTOCOL": "SSL",
        "AUTOPILOT_SSL_CAFILE": str(ca.cert),
        "AUTOPILOT_SSL_CERTFILE": str(tmp_path / "client" / "broker.pem"),
        "AUTOPILOT_SSL_KEYFILE": str(tmp_path / "client" / "broker.key"),
    }
    assert Settings.from_env(env).ssl_context() is not None
    mismatched = Settings.from_env({**env, "AUTOPILOT_SSL_KEYFILE": str(ca.key)})
    with pytest.raises(
        SettingsError, match=r"AUTOPILOT_SSL_CERTFILE/KEYFILE: .*broker\.pem: not a PEM"
    ):
        mismatched.ssl_context()


def test_a_ca_file_that_is_not_pem_is_a_settings_error(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    settings = Settings.from_env(
        {"AUTOPILOT_SECURITY_PROTOCOL": "SSL", "AUTOPILOT_SSL_CAFILE": str(garbage)}
    )
    with pytest.raises(
        SettingsError, match=re.escape(f"AUTOPILOT_SSL_CAFILE: {garbage}: not a PEM")
    ):
        settings.ssl_context()


def test_sasl_credentials_for_faust_carry_the_settings_but_show_no_password() -> None:
    settings = Settings.from_env(
        {**SASL, "AUTOPILOT_SASL_PASSWORD": "faust-secret", "AUTOPILOT_SASL_MECHANISM": "PLAIN"}
    )
    credentials = broker_credentials(settings)
    assert credentials is not None
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism.value == "PLAIN"
    assert (credentials.username, credentials.password) == ("worker", "faust-secret")
    assert "faust-secret" not in repr(credentials)
    assert broker_credentials(Settings()) is None


def test_cli_names_the_variable_not_the_secret() -> None:
    result = subprocess.run(
        [str(AUTOPILOT), "kafka", "status"],
        env={**os.environ, "AUTOPILOT_SASL_PASSWORD": "cli-secret"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "autopilot: configuration error: AUTOPILOT_SASL_PASSWORD is set but "
        "AUTOPILOT_SECURITY_PROTOCOL=PLAINTEXT does not use it (SASL needs SASL_SSL)"
    )
    assert "cli-secret" not in result.stdout + result.stderr


def test_broker_config_gains_a_sasl_ssl_listener_only_when_asked(tmp_path: Path) -> None:
    for name in ("plain", "secure"):
        (tmp_path / name).mkdir()
    plain = KafkaLocal(port=9100, data_dir=tmp_path / "plain")._write_config(9101).read_text()
    assert "SASL" not in plain and "ssl." not in plain
    security = BrokerSecurity(9102, tmp_path / "broker.p12", "store-secret", {"worker": "pw"})
    secure = KafkaLocal(port=9100, data_dir=tmp_path / "secure", security=security)
    config = secure._write_config(9101)
    props = dict(line.split("=", 1) for line in config.read_text().splitlines())
    assert props["listeners"].endswith(",SASL_SSL://127.0.0.1:9102")
    assert props["advertised.listeners"] == ("PLAINTEXT://127.0.0.1:9100,SASL_SSL://127.0.0.1:9102")
    assert props["listener.name.sasl_ssl.ssl.keystore.password"] == "store-secret"
    assert config.stat().st_mode & 0o077 == 0, "the keystore password is readable by others"
    assert secure.secure_bootstrap == "127.0.0.1:9102"
    assert "store-secret" not in repr(secure)


def test_scram_passwords_with_quotes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KafkaLocalError, match="may not hold"):
        BrokerSecurity(9102, tmp_path / "broker.p12", "pw", {"worker": 'a"b'})

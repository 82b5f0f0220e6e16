"""Throw-away TLS material for tests: a CA and a broker certificate it signed.

Made with the ``openssl`` command in a temporary directory, never committed. The
certificates satisfy Python's strict X.509 checks (key identifiers, key usage),
so a client that verifies them the way a production client does accepts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["BrokerTLS", "CertificateAuthority", "make_ca", "require_openssl"]


def require_openssl() -> str:
    """The ``openssl`` executable; skips the calling test when there is none."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH; it makes the test certificates")
    return openssl


def _openssl(*args: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(
        [require_openssl(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()[-1000:]}")


@dataclass(frozen=True)
class BrokerTLS:
    """A broker's key and certificate, as a PKCS12 keystore Kafka reads."""

    keystore: Path
    password: str = field(repr=False)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that can sign broker certificates."""

    cert: Path
    """The CA certificate (PEM): what clients trust (``AUTOPILOT_SSL_CAFILE``)."""
    key: Path

    def broker(self, directory: Path, password: str) -> BrokerTLS:
        """Issue a server certificate for 127.0.0.1 and localhost, in a PKCS12 keystore."""
        directory.mkdir(parents=True, exist_ok=True)
        key, csr, cert = (
            directory / "broker.key",
            directory / "broker.csr",
            directory / "broker.pem",
        )
        extensions = directory / "broker.ext"
        extensions.write_text(
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"
        )
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(csr), "-subj", "/CN=localhost")  # fmt: skip
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                 "-set_serial", "2", "-days", "2", "-extfile", str(extensions),
                 "-out", str(cert))  # fmt: skip
        keystore = directory / "broker.p12"
        # The password goes through the environment, not the command line others can read.
        _openssl("pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
                 "-certfile", str(self.cert), "-name", "broker", "-out", str(keystore),
                 "-passout", "env:KEYSTORE_PASSWORD",
                 env={"KEYSTORE_PASSWORD": password})  # fmt: skip
        return BrokerTLS(keystore, password)


def make_ca(directory: Path, name: str = "autopilot-test-ca") -> CertificateAuthority:
    """A fresh CA in ``directory``, valid for two days."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "ca.key", directory / "ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return CertificateAuthority(cert, key)

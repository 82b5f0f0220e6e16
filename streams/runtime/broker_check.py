"""One connection to the broker before the worker starts, to catch what retrying cannot fix.

A wrong password or an untrusted broker certificate makes aiokafka log the cause
once and then fail with a bare "Unable to bootstrap"; Faust adds a long traceback
on top. Connecting once with the worker's own settings names the cause instead.
"""

from __future__ import annotations

import asyncio
import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.runtime.settings import Settings

__all__ = ["BrokerRefused", "check_broker_access"]


class BrokerRefused(RuntimeError):
    """The broker rejected the client's credentials, or TLS failed; the message says which."""


def _hosts(settings: Settings) -> list[tuple[str, int]]:
    hosts = []
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


async def check_broker_access(settings: Settings, timeout_s: float = 20.0) -> None:
    """Connect and authenticate to the first bootstrap server that answers.

    Unreachable servers are skipped and nothing is raised when none answers:
    a broker that is still starting is the client's retries' business.

    Raises
    ------
    BrokerRefused
        If a server rejects the credentials or the TLS handshake fails; the
        message names the server and the settings to check, never the password.
    """
    security = settings.aiokafka_security_kwargs()
    for host, port in _hosts(settings):
        where = f"the broker at {host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id=f"{settings.app_id}-check",
                    request_timeout_ms=int(timeout_s * 1000),
                    **security,
                ),
                timeout_s,
            )
        except (SaslAuthenticationFailed, IllegalSaslStateError):
            raise BrokerRefused(
                f"authentication failed: {where} rejected SASL user {settings.sasl_username!r} "
                f"with {settings.sasl_mechanism} (check AUTOPILOT_SASL_USERNAME and "
                "AUTOPILOT_SASL_PASSWORD)"
            ) from None
        except UnsupportedSaslMechanismError as exc:
            raise BrokerRefused(
                f"authentication failed: {exc} (AUTOPILOT_SASL_MECHANISM)"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            trusted = settings.ssl_cafile or "the system CAs"
            raise BrokerRefused(
                f"TLS verification failed: the certificate of {where} is not signed by "
                f"{trusted} or does not name {host}: {exc.verify_message} "
                "(check AUTOPILOT_SSL_CAFILE)"
            ) from None
        except ssl.SSLError as exc:
            raise BrokerRefused(
                f"TLS handshake with {where} failed: {exc.reason or exc} "
                "(is it a TLS listener? check AUTOPILOT_SECURITY_PROTOCOL)"
            ) from None
        except (OSError, TimeoutError, KafkaError):
            continue
        conn.close()
        return

"""A webhook as a paas-autopilot action plugin (``webhook``): POST each decision's JSON.

Standard library only (``urllib.request``). A webhook URL often carries a token in its path
or query, and headers may carry one too: neither ever appears in a result, only the URL's
scheme and host (:func:`redact`). Redirects are not followed: a redirected POST would lose
its body or, worse, take its headers to another host.

Examples
--------
>>> hook = WEBHOOK.factory(url="https://hooks.example.com/T0K3N?sig=s3cret")
>>> hook
Webhook('https://hooks.example.com')
>>> sorted(WEBHOOK.capabilities), WEBHOOK.builtin
(['network'], False)

Nothing listens on port 9 here, so the call fails, and says so without raising:

>>> WEBHOOK.factory(url="http://127.0.0.1:9/hook/T0K3N", timeout_s=1.0).apply({"a": 1}).ok
False
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson

from models.base import ActionResult
from models.registry import Entry

__all__ = ["WEBHOOK", "Webhook", "redact"]


def redact(url: str) -> str:
    """The URL's scheme and host (and port): what may be shown of it.

    >>> redact("https://user:pw@hooks.example.com:8443/services/T0K3N?sig=x")
    'https://hooks.example.com:8443'
    """
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # None makes urllib raise the 3xx as an HTTPError: reported as a failure.
        return None


class Webhook:
    """POSTs a decision as JSON to ``url``; :meth:`apply` never raises for HTTP or network.

    Parameters
    ----------
    url
        An ``http`` or ``https`` URL.
    timeout_s
        Seconds for the connection and for each read.
    headers
        Sent with every request (e.g. ``Authorization``), besides the JSON content type.
    """

    def __init__(
        self, url: str, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            # urllib would also open file:// and ftp://, which this plugin does not declare.
            raise ValueError(f"webhook url must be http or https, not {redact(url)}")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self._url = url
        self.target = redact(url)
        self.timeout_s = float(timeout_s)
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": "paas-autopilot-webhook",
            **(headers or {}),
        }
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"Webhook({self.target!r})"

    def apply(self, decision: Mapping[str, Any]) -> ActionResult:
        """POST ``decision`` as JSON; success is an HTTP status in 2xx."""
        request = urllib.request.Request(
            self._url, data=orjson.dumps(dict(decision)), headers=self._headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return ActionResult(True, f"HTTP {response.status} from {self.target}")
        except urllib.error.HTTPError as exc:
            return ActionResult(False, f"HTTP {exc.code} from {self.target}")
        except urllib.error.URLError as exc:
            return ActionResult(False, self._failure(exc.reason))
        except (OSError, http.client.HTTPException) as exc:
            return ActionResult(False, self._failure(exc))

    def _failure(self, reason: object) -> str:
        """One line naming the error, never the whole URL."""
        text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        text = text.replace(self._url, self.target)
        return f"{self.target}: {' '.join(text.split())[:200]}"


WEBHOOK = Entry(
    group="actions",
    name="webhook",
    factory=Webhook,
    # The instance holds its URL, headers and an opener: a few KB, whatever the traffic.
    max_bytes_per_key=16 * 1024,
    summary="POSTs each decision's JSON to a URL",
    # The call is bounded by timeout_s (default 2 s) for the connection and each read.
    max_seconds_per_call=5.0,
    capabilities=frozenset({"network"}),
)
"""The entry point ``paas_autopilot.actions:webhook``."""

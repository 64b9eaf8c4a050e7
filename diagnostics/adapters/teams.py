"""Posting to a Teams Workflows webhook ("When a Teams webhook request is received").

The whole URL is the secret (its `sig` parameter): it is never logged — requests are recorded by
path only, and errors name the service, never the URL. Sent through the shared plumbing: 429 and
5xx are retried with back-off (the trigger accepts nothing on those, so a retry cannot post twice),
a 4xx is not retried. Any 2xx is "accepted": the flow posts asynchronously (platform-apis.md §3.4).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx

from diagnostics.adapters.http import ClosingClient, RequestHook, RetryPolicy, Service, send
from diagnostics.render_card import encode


def _hint(status: int, method: str) -> str:
    if status == 0:
        return "check the network path to the Workflows webhook; the post is retried on the next run"
    if status in (401, 403):
        return "the workflow refuses the caller: check that its trigger allows anyone with the URL to post"
    if status == 404:
        return "the workflow is gone or turned off: create it again and update DIAG_TEAMS_WEBHOOK_URL"
    if status == 413:
        return "the card is too large for Teams (a bug: cards are kept under 28 KB)"
    if status == 429:
        return "Power Automate throttles this flow; the post is retried on the next run"
    if status >= 500:
        return "the workflow service failed; the post is retried on the next run"
    return "the workflow refused the message; check that it posts an Adaptive Card from the webhook"


TEAMS = Service("Teams webhook", _hint)


class _HideWebhookUrl(logging.Filter):
    """httpx logs every request's full URL at INFO; the webhook's URL is a secret, so its query
    (the `sig`) is replaced before any handler (App Insights, the console) sees the record."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets and isinstance(record.args, tuple):
            record.args = tuple(self._hidden(a) for a in record.args)
        if self.secrets and isinstance(record.msg, str) and any(s in record.msg for s in self.secrets):
            record.msg = self._hidden(record.msg)
        return True

    def _hidden(self, value: object) -> object:
        text = str(value)
        if not any(secret in text for secret in self.secrets):
            return value
        return text.split("?", 1)[0] + "?<hidden>"


_FILTER = _HideWebhookUrl()
logging.getLogger("httpx").addFilter(_FILTER)


class TeamsWebhook(ClosingClient):
    """Posts one message (an Adaptive Card) per call to the webhook URL."""

    def __init__(
        self,
        url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        on_request: RequestHook | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._url = url
        if "?" in url:
            _FILTER.secrets.add(url.split("?", 1)[1])
        self._retry = retry or RetryPolicy()
        self._on_request = on_request
        self._client = httpx.AsyncClient(verify=verify, timeout=timeout)

    def __repr__(self) -> str:  # never the URL: it holds the secret
        return "TeamsWebhook(<url hidden>)"

    async def post(self, payload: dict[str, Any]) -> int:
        """Post the message; returns its size in bytes. Raises ServiceError (one line, no URL)."""
        body = encode(payload)
        request = self._client.build_request(
            "POST", self._url, content=body, headers={"Content-Type": "application/json"}
        )
        await send(self._client, request, service=TEAMS, retry=self._retry, on_request=self._on_request)
        return len(body)

"""The errors the tool raises. Each carries a one-line message a user can act on.

The command line maps them to exit statuses: `InputError`/`ConfigError` → 2 (bad usage,
configuration or input), `ServiceError` and its subclasses → 3 (the run could not complete).
"""

from __future__ import annotations


class DiagnosticsError(Exception):
    """Base of every error the tool raises on purpose."""


class InputError(DiagnosticsError):
    """Bad input: a fixture, an id, a date, a schema-map file."""


class ConfigError(DiagnosticsError):
    """A setting is missing or invalid; the message names the setting."""


class ServiceError(DiagnosticsError):
    """A remote service answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServiceUnreachable(ServiceError):
    """The service could not be reached (network error, timeout, or 5xx after every retry)."""


class DeadlineExceeded(ServiceUnreachable):
    """The unit of work ran out of time before a request could be (re)sent; transient."""


class AuthError(ServiceError):
    """401/403 or no token: the identity is wrong or lacks a privilege."""


class NotFoundError(ServiceError):
    """404: the resource does not exist. An existence check treats this as an answer, not a failure."""


class Throttled(ServiceUnreachable):
    """429 after every retry, or a `Retry-After` longer than the tool is willing to wait."""


class InvoiceNotFound(InputError):
    """No provider invoice has the id or invoice number asked for."""

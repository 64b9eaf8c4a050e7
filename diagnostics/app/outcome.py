"""What becomes of a received message, and how a failure's kind decides it.

Handlers return an `Outcome`; `settle` applies it through the `MessageActions` port (the Functions
host's settlement client in Azure, the broker's receiver in the replay, a fake in unit tests):

- complete: done (also when there was nothing to do);
- retry: abandon, so Service Bus delivers it again; after the queue's max delivery count it is
  dead-lettered by the broker (`MaxDeliveryCountExceeded`);
- dead letter: at once, with a short stable reason and one readable line a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from diagnostics.adapters.http import one_line
from diagnostics.errors import (
    AuthError,
    ConfigError,
    InputError,
    InvoiceNotFound,
    NotFoundError,
    ServiceError,
    ServiceUnreachable,
)
from diagnostics.messages import MessageError
from diagnostics.ports import MessageActions

# Service Bus keeps both as message properties; long values only make the DLQ harder to read.
_MAX_REASON = 64
_MAX_DESCRIPTION = 1000


@dataclass(frozen=True)
class Outcome:
    action: Literal["complete", "retry", "deadletter"]
    reason: str | None = None
    description: str | None = None

    def __str__(self) -> str:
        return self.action if self.reason is None else f"{self.action}:{self.reason}"


COMPLETE = Outcome("complete")


def retry(description: str) -> Outcome:
    return Outcome("retry", "Transient", one_line(description, _MAX_DESCRIPTION))


def dead_letter(reason: str, description: str) -> Outcome:
    return Outcome("deadletter", reason[:_MAX_REASON], one_line(description, _MAX_DESCRIPTION))


def classify(exc: BaseException) -> Outcome:
    """A failure's kind decides: transient → retry; permanent → dead letter with a reason."""
    if isinstance(exc, MessageError):
        return dead_letter(exc.reason, exc.description)
    if isinstance(exc, InvoiceNotFound):
        return dead_letter("InvoiceNotFound", str(exc))
    if isinstance(exc, AuthError):
        return dead_letter("AccessDenied", str(exc))
    if isinstance(exc, ConfigError):
        # Every message would fail the same way: the person fixes the setting, then resubmits the
        # dead letters (README, "Dead letters").
        return dead_letter("AppMisconfigured", str(exc))
    if isinstance(exc, ServiceUnreachable | TimeoutError | OSError):
        return retry(str(exc) or type(exc).__name__)
    if isinstance(exc, NotFoundError):
        return dead_letter("NotFound", str(exc))
    if isinstance(exc, ServiceError):
        return dead_letter("ServiceRejected", str(exc))
    if isinstance(exc, InputError):
        return dead_letter("BadInput", str(exc))
    # A bug or something unforeseen: retried, so a passing glitch heals; a repeating one ends in
    # the dead-letter queue after the max delivery count, with the traceback in the logs.
    return retry(f"unexpected {type(exc).__name__}: {exc}")


def settle(outcome: Outcome, message: Any, actions: MessageActions) -> None:
    if outcome.action == "complete":
        actions.complete(message)
    elif outcome.action == "retry":
        actions.abandon(message)
    else:
        actions.deadletter(
            message,
            deadletter_reason=outcome.reason,
            deadletter_error_description=outcome.description,
        )

"""Fakes shared by the adapter tests: a credential (only where the credential is not under test),
a sleep that records instead of waiting, and a retry policy without jitter."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from diagnostics.adapters.http import RetryPolicy


class FakeCredential:
    """A sync TokenCredential: hands out token-1, token-2, … valid for `lifetime` seconds."""

    def __init__(self, lifetime: int = 3600, clock: Any = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(self.clock()) + self.lifetime)


class Sleeps:
    """Stands in for asyncio.sleep: records each pause and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    # No jitter, so the back-off pauses are exact: 0.5, 1, 2, 4 s.
    return RetryPolicy(sleep=sleeps, jitter=lambda delay: delay)


@pytest.fixture
def credential_factory() -> type[FakeCredential]:
    return FakeCredential

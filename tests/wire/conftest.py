"""Shared by the wire tests: a credential for clients whose transport is mocked."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken


class StaticCredential:
    """A sync TokenCredential handing out one token, for clients that never reach Entra ID."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("wire-test-token", int(time.time()) + 3600)


@pytest.fixture
def credential() -> StaticCredential:
    return StaticCredential()

"""Each test of the Function app starts without a container: the functions build theirs from the
settings (or a test installs one), and it is closed after the test, on the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from diagnostics.app.container import use_container


@pytest.fixture(autouse=True)
async def fresh_container() -> AsyncIterator[None]:
    previous = use_container(None)
    yield
    current = use_container(previous)
    if current is not None and current is not previous:
        await current.aclose()

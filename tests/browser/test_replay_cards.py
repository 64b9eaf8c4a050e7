"""Every Teams card a replay actually posts (the raw bodies the simulator's Teams sink received),
rendered by the official Adaptive Cards renderer with the same checks as the built cards: parsed at
1.5 with no warning, every element in 1.5, under Teams' size limit, rendered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diagnostics.replay import ReplayOptions, run_replay
from diagnostics.settings import load_settings
from tests.browser.conftest import SAMPLE, Watched
from tests.browser.test_teams_cards import assert_renders_clean, renderer

__all__ = ["renderer"]  # the fixture, shared with the built cards' test

DAYS = 4  # from the sample tenant's start: new findings are posted, and resolved ones


@pytest.fixture(scope="module")
def posted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    state = tmp_path_factory.mktemp("state") / "state.json"
    patch = pytest.MonkeyPatch()
    patch.setenv("DIAG_STATE_FILE", str(state))  # no silences of anyone's hide a card
    try:
        replay = run_replay(ReplayOptions(Path(SAMPLE), days=DAYS), load_settings())
    finally:
        patch.undo()
    return [json.loads(body) for body in replay.teams_bodies]


def test_the_replay_posts_cards_of_every_kind(posted: list[dict[str, Any]]) -> None:
    assert posted, "the replay posted nothing: this test would check no card"
    ids = {
        str(item.get("id", ""))
        for payload in posted
        for item in payload["attachments"][0]["content"]["body"]
        if isinstance(item, dict)
    }
    assert any(i.startswith("new:") for i in ids)
    assert any(i.startswith("resolved:") for i in ids)


def test_every_posted_card_parses_clean_at_1_5_and_renders(
    renderer: Watched, posted: list[dict[str, Any]]
) -> None:
    for payload in posted:
        assert_renders_clean(renderer, payload)

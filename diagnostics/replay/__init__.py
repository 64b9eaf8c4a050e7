"""The local replay of the monitor: `python -m diagnostics monitor --simulate FIXTURE` (monitor.md)."""

from diagnostics.replay.run import MAX_DAYS, ReplayOptions, run_replay
from diagnostics.replay.story import Replay, to_json, to_text

__all__ = ["MAX_DAYS", "Replay", "ReplayOptions", "run_replay", "to_json", "to_text"]

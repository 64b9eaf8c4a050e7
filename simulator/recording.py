"""What the simulator received from the tool: notes written and Teams posts, for tests and the replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.tenant import ServedTable


@dataclass(frozen=True)
class RecordedNote:
    annotation_id: str
    object_id: str | None  # the record the note is on
    object_type: str | None  # its table (as served)
    subject: str | None  # the subject line
    text: str | None  # notetext, as last written
    writes: int  # creates and upserts of this id
    first_written: str | None  # createdon (simulated clock)
    last_written: str | None  # modifiedon (simulated clock)


@dataclass(frozen=True)
class TeamsPost:
    at: datetime  # the simulated clock when it arrived
    body: bytes  # as received

    @property
    def size(self) -> int:
        return len(self.body)


def notes_by_id(writes: list[dict[str, Any]], table: ServedTable) -> list[RecordedNote]:
    """One record per annotation id from the log of written rows (served property names), in the
    order each note was first written."""
    prop = {name: column.prop for name, column in table.by_default.items() if name}
    last: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for values in writes:
        key = str(values[prop["annotationid"]])
        last[key] = values
        counts[key] = counts.get(key, 0) + 1
    return [
        RecordedNote(
            key,
            values.get(prop["objectid"]),
            values.get(prop["objecttypecode"]),
            values.get(prop["subject"]),
            values.get(prop["notetext"]),
            counts[key],
            values.get(prop["createdon"]),
            values.get(prop["modifiedon"]),
        )
        for key, values in last.items()
    ]

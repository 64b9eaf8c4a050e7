"""Notify only when a unit's findings changed: a fingerprint (dedup key + severity of every finding)
per unit in the state store (kind "findings"), so that duplicate deliveries and re-checks that find
the same thing do not notify again."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from diagnostics.adapters.dataverse import DataverseClient, Write
from diagnostics.adapters.teams import TeamsWebhook
from diagnostics.errors import DiagnosticsError, NotFoundError, ServiceError
from diagnostics.lifecycle import (
    ALERT,
    AlertSettings,
    Claim,
    Post,
    Silence,
    SubjectAlerts,
    advance,
    apply_silences,
    claimed,
    from_value,
    posted,
    released,
    subject_key,
    to_value,
    unchecked,
)
from diagnostics.messages import Unit, unit_key
from diagnostics.model import Finding, Report, Statistics, Subject
from diagnostics.note import NoteContent, blocks_of, note_id, note_record, render_note
from diagnostics.ports import ConflictError, Notifier, StateStore, Stored
from diagnostics.render_card import CardItem, build_cards, record_url
from diagnostics.silences import load as load_silences

if TYPE_CHECKING:
    from diagnostics.app.container import SchemaCache
    from diagnostics.metadata import ResolvedSchema

log = logging.getLogger("diagnostics.app.notify")

FINDINGS = "findings"  # state kind


def fingerprint(report: Report) -> list[str]:
    return sorted({f"{f.dedup_key}|{f.severity}" for f in report.findings})


async def notify_if_changed(
    notifier: Notifier, state: StateStore, unit: Unit, report: Report, *, at: datetime
) -> bool:
    """Notify when the findings differ from the last notified ones; True when it notified.

    Notify first, record after: a failure between the two notifies again on the next delivery
    (notifiers upsert, so that is safe), never loses a change.
    """
    if getattr(notifier, "decides_changes", False):
        await notifier.notify(unit, report, at=at)  # it keeps its own state: reminders, retries
        return True
    key = unit_key(unit)
    stored = await state.get(FINDINGS, key)
    current = fingerprint(report)
    previous = list(stored.value.get("fingerprint", [])) if stored else []
    if current == previous:
        return False
    await notifier.notify(unit, report, at=at)
    with contextlib.suppress(ConflictError):  # a concurrent delivery of the same unit recorded it
        await state.put(
            FINDINGS,
            key,
            {"fingerprint": current, "at": at.isoformat()},
            etag=stored.etag if stored else None,
        )
    return True


async def notify_each(
    notifier: Notifier, state: StateStore, parts: Sequence[tuple[Unit, Report]], *, at: datetime
) -> bool:
    """A batch's report told per unit it stands for (loading.units.per_contract), each as its own
    check would have told it; True when any notified. The monitor's notifier tells them in one run
    (one Teams card); another notifier is told unit by unit, each when its findings changed."""
    if isinstance(notifier, MonitorNotifier):
        await notifier.notify_many(parts, at=at)
        return True
    notified = False
    for unit, report in parts:
        notified |= await notify_if_changed(notifier, state, unit, report, at=at)
    return notified


async def notify_gone(notifier: Notifier, state: StateStore, unit: Unit, *, at: datetime) -> None:
    """The unit's record is gone (an invoice deleted so that Work 365 re-imports it): nothing is
    found about it any more, so what was told about it resolves."""
    if getattr(notifier, "decides_changes", False):
        empty = Report(as_of=at, period="", statistics=Statistics.of((), checks=0, passed=0), findings=())
        await notifier.notify(unit, empty, at=at)


# --- the living note and the Teams card ---------------------------------------------------------

# Notes written per `$batch` change set: one round trip for a run's notes (a first day's check of
# the tenant writes hundreds), small enough that a change set a gone record rolls back is cheap to
# write again note by note.
NOTES_PER_CHANGE_SET = 100
UNIT_SUBJECTS = "alertunit"  # state kind: the subjects each unit saw last time (to see them resolve)
_ATTEMPTS = 5  # optimistic-concurrency rounds before giving up on one subject this run


class NoteWriter:
    """Upserts a subject's note (annotation) on its record, with the environment's names."""

    def __init__(self, dataverse: DataverseClient, schema: SchemaCache) -> None:
        self._dataverse = dataverse
        self._schema = schema

    async def table_name(self, default: str) -> str:
        return (await self._schema.get()).schema.schema_map.table(default)

    async def write(self, subject: Subject, content: NoteContent) -> bool:
        """True when written; False when the subject has no record to hold a note, or it is gone."""
        record = note_record(subject)
        if record is None:
            return False
        schema = (await self._schema.get()).schema
        try:
            await self._dataverse.upsert(
                schema.entity_set("annotation"), note_id(subject), _body(schema, record, content)
            )
        except NotFoundError:
            log.info("the %s %s is gone: its note is not written", subject.type, record[1])
            return False
        return True

    async def write_many(self, notes: Sequence[_Note], settle: Callable[[_Note], Awaitable[None]]) -> None:
        """The notes in change sets of NOTES_PER_CHANGE_SET, one round trip each instead of one per
        note, each note settled (`settle`) once written. A change set is all or nothing: when one
        fails (a record gone, a fault), its notes are written one by one as `write` writes them
        (retried, a gone record told apart); an upsert written twice is the same note."""
        writable = [n for n in notes if note_record(n.subject) is not None]
        for n in notes:
            if note_record(n.subject) is None:
                await settle(n)
        schema = (await self._schema.get()).schema
        entity_set = schema.entity_set("annotation")
        for start in range(0, len(writable), NOTES_PER_CHANGE_SET):
            chunk = writable[start : start + NOTES_PER_CHANGE_SET]
            if len(chunk) > 1:
                writes = [
                    Write("PATCH", f"{entity_set}({note_id(n.subject)})", _body(schema, record, n.content))
                    for n in chunk
                    if (record := note_record(n.subject)) is not None
                ]
                try:
                    await self._dataverse.change_set(writes)
                except DiagnosticsError as exc:
                    log.info("a change set of %d notes failed, written one by one: %s", len(chunk), exc)
                else:
                    for n in chunk:
                        await settle(n)
                    continue
            for n in chunk:
                await self.write(n.subject, n.content)
                await settle(n)


def _body(schema: ResolvedSchema, record: tuple[str, str], content: NoteContent) -> dict[str, Any]:
    table, record_id = record
    return {
        "subject": content.subject_line,
        "notetext": content.text,
        f"objectid_{schema.schema_map.table(table)}@odata.bind": f"/{schema.entity_set(table)}({record_id})",
    }


@dataclass(frozen=True)
class _Note:
    """A note this run claimed and is to write."""

    key: str
    subject: Subject
    content: NoteContent


@dataclass
class _Claimed:
    key: str
    posts: tuple[Post, ...]


class MonitorNotifier:
    """`diagnostics.ports.Notifier`: the living note on each subject's record and the Teams card of
    the run, driven by the alert lifecycle (diagnostics/lifecycle.py) over the state store.

    Called after every check (not only when the findings changed): a reminder falls due, a silence
    ends, a failed post waits to be posted again. Writes the note only when its content changed and
    posts only what changed, so an unchanged day writes and posts nothing.
    """

    decides_changes = True  # notify_if_changed calls it every time

    def __init__(
        self,
        state: StateStore,
        *,
        notes: NoteWriter | None,
        teams: TeamsWebhook | None,
        dataverse_url: str | None,
        settings: AlertSettings | None = None,
    ) -> None:
        self._state = state
        self._notes = notes
        self._teams = teams
        self._dataverse_url = dataverse_url
        self._settings = settings or AlertSettings()

    async def notify(self, unit: Unit, report: Report, *, at: datetime, partial: bool = False) -> None:
        await self.notify_many([(unit, report)], at=at, partial=partial)

    async def notify_many(
        self, parts: Sequence[tuple[Unit, Report]], *, at: datetime, partial: bool = False
    ) -> None:
        """Each unit's report told as `notify` tells it (its subjects' alert state, notes and the
        subjects it saw, under its own key), and what is to be posted about all of them in one
        Teams card: a batch of contracts is one run, so one card (monitor.md, "one message per run").

        One run id for all: a subject two units name (the tool's own findings, in every contract's
        report) is claimed once and posted once. A failure frees every claim the run took, so the
        redelivery (which tells every unit again) posts them.
        """
        run = uuid.uuid4().hex
        silences = await load_silences(self._state)
        claims: dict[str, _Claimed] = {}
        notes: dict[str, _Note] = {}
        visited: list[str] = []
        seen: list[tuple[str, dict[str, Subject]]] = []
        try:
            for unit, report in parts:
                seen.append(
                    await self._unit(unit, report, run, at, silences, partial, claims, notes, visited)
                )
            if notes:
                # The run's notes together (one change set per hundred), before the card that
                # points to them; a failure fails the delivery, which writes them again.
                assert self._notes is not None
                await self._notes.write_many(
                    list(notes.values()),
                    lambda n: self._settle_note(n.key, n.content.content_hash, run, written=True),
                )
        except Exception:
            # The delivery fails and comes again at once: free this run's claims, or the posts
            # they hold would wait for the claims to expire, and be lost if nothing looks again.
            await self._release(visited, run)
            raise
        if claims:
            await self._post(list(claims.values()), run, at)
        for ukey, subjects in seen:
            await self._remember(ukey, subjects)

    async def _unit(
        self,
        unit: Unit,
        report: Report,
        run: str,
        at: datetime,
        silences: list[Silence],
        partial: bool,
        claims: dict[str, _Claimed],
        notes: dict[str, _Note],
        visited: list[str],
    ) -> tuple[str, dict[str, Subject]]:
        """Advance the subjects of one unit's report (and those it saw last time); add what is to
        be posted to `claims`. Returns the unit's key and the subjects to remember for it."""
        ukey = unit_key(unit)
        findings = apply_silences(report.findings, silences, at.date())
        by_subject: dict[str, list[Finding]] = {}
        subjects: dict[str, Subject] = {}
        for item in findings:
            key = subject_key(item.subject)
            by_subject.setdefault(key, []).append(item)
            subjects[key] = item.subject
        seen_before = await self._unit_subjects(ukey)
        for key, subject in seen_before.items():
            subjects.setdefault(key, subject)
        waiting: set[str] = set()
        for key, subject in sorted(subjects.items()):
            visited.append(key)
            posts, note = await self._subject(
                key, subject, by_subject.get(key, []), ukey, run, at, silences, partial, waiting
            )
            # A later unit's visit of the same subject sees its latest pending changes and note.
            if posts:
                claims[key] = _Claimed(key, posts)
            if note is not None:
                notes[key] = note
        # A subject whose findings are gone is still visited next run while something about it
        # waits (a resolution another delivery claimed, or not yet worked out, or a finding still
        # open that a unit no longer checked may be holding): else it is lost.
        current = {k: subjects[k] for k in sorted({*by_subject, *waiting})}
        return ukey, ({**seen_before, **current} if partial else current)

    async def _subject(
        self,
        key: str,
        subject: Subject,
        findings: list[Finding],
        unit: str,
        run: str,
        at: datetime,
        silences: list[Silence],
        partial: bool,
        waiting: set[str],
    ) -> tuple[tuple[Post, ...], _Note | None]:
        """Advance one subject's state, claim its note when it changed (the note to write is
        returned) and what is to be posted.
        Adds `key` to `waiting` while a change is to be posted (by this run, or a later one when the
        post fails or another run holds the claim), while a finding on it is open (it resolves on a
        visit once the units holding it are no longer checked: lifecycle.UNIT_GRACE), or when the
        state could not be advanced."""
        for _ in range(_ATTEMPTS):
            stored = await self._state.get(ALERT, key)
            before = from_value(stored.value) if stored else SubjectAlerts(subject)
            outcome = advance(
                replace(before, subject=subject),
                findings,
                unit=unit,
                run=run,
                now=at,
                silences=silences,
                settings=self._settings,
                blocks=blocks_of(findings, lookup=partial),
                partial=partial,
            )
            state, posts = outcome.state, outcome.posts
            content = render_note(state, checked_at=at)
            state, writing = self._claim_note(before, state, content, run, at)
            if posts and self._teams is None:
                state, posts = posted(state, posts, at, run), ()  # nowhere to post: nothing waits
            elif posts:
                state = claimed(state, run, at)
            try:
                await self._state.put(ALERT, key, to_value(state), etag=stored.etag if stored else None)
            except ConflictError:
                continue  # another worker changed the subject: read it again
            if any(e.pending is not None or e.open for e in state.entries.values()):
                waiting.add(key)  # posted by this run or a later one, or open: looked at again next run
            return posts, (_Note(key, subject, content) if writing and content is not None else None)
        log.warning("the alert state of %s kept changing under this run; the next run updates it", key)
        waiting.add(key)
        return (), None

    def _claim_note(
        self, before: SubjectAlerts, state: SubjectAlerts, content: NoteContent | None, run: str, at: datetime
    ) -> tuple[SubjectAlerts, bool]:
        """The state with the note claimed by this run when its content changed (or an earlier
        write did not finish); True when this run is to write it."""
        if content is None or (content.content_hash == before.note_hash and before.note_written):
            return state, False
        if self._notes is None or note_record(state.subject) is None:
            return replace(state, note_hash=content.content_hash, note_written=True), False
        if state.note_claimed_by_other(run, at, self._settings):
            return state, False
        # Claimed with the ETag first: a duplicate delivery running alongside does not write the
        # same note again.
        claimed_state = replace(
            state, note_hash=content.content_hash, note_written=False, note_claim=Claim(run, at)
        )
        return claimed_state, True

    async def sweep(self, at: datetime) -> int:
        """The daily sweep over every subject's alert state (lifecycle.unchecked): the open findings
        no unit has seen for lifecycle.SWEEP_AFTER are on records no planned check visits any more;
        they leave the open ones as *no longer checked*, said once in the note, never posted.
        A note whose write did not finish (its worker died, its claim expired) is written too.
        Returns how many subjects' findings it took out of the open ones."""
        run = uuid.uuid4().hex
        notes: list[_Note] = []
        swept = 0
        for key, stored in await self._state.list(ALERT):
            done, note = await self._sweep_subject(key, stored, run, at)
            swept += done
            if note is not None:
                notes.append(note)
        if notes:
            assert self._notes is not None
            try:
                await self._notes.write_many(
                    notes, lambda n: self._settle_note(n.key, n.content.content_hash, run, written=True)
                )
            except Exception:
                await self._release([n.key for n in notes], run)
                raise
        return swept

    async def _sweep_subject(
        self, key: str, stored: Stored | None, run: str, at: datetime
    ) -> tuple[bool, _Note | None]:
        for _ in range(_ATTEMPTS):
            if stored is None:
                return False, None
            try:
                before = from_value(stored.value)
            except (KeyError, ValueError):
                log.warning("the alert state of %s cannot be read; the sweep leaves it", key)
                return False, None
            swept = unchecked(before, at)
            if swept is None and before.note_written:
                return False, None  # nothing to sweep, its note written: left as it is
            state = swept or before
            content = render_note(state, checked_at=state.last_check or at)
            state, writing = self._claim_note(before, state, content, run, at)
            if state == before:
                return False, None
            try:
                await self._state.put(ALERT, key, to_value(state), etag=stored.etag)
            except ConflictError:
                stored = await self._state.get(ALERT, key)  # a check changed it meanwhile: again
                continue
            note = _Note(key, state.subject, content) if writing and content is not None else None
            return swept is not None, note
        log.warning("the alert state of %s kept changing under the sweep; the next sweep sees it", key)
        return False, None

    async def _settle_note(self, key: str, content_hash: str, run: str, *, written: bool) -> None:
        for _ in range(_ATTEMPTS):
            stored = await self._state.get(ALERT, key)
            if stored is None:
                return
            state = from_value(stored.value)
            if state.note_claim is not None and state.note_claim.by == run:
                state = replace(state, note_claim=None)
            if written and state.note_hash == content_hash:
                state = replace(state, note_written=True)
            try:
                await self._state.put(ALERT, key, to_value(state), etag=stored.etag)
            except ConflictError:
                continue
            return

    async def _post(self, claims: list[_Claimed], run: str, at: datetime) -> None:
        assert self._teams is not None
        items = [await self._card_item(p) for c in claims for p in c.posts]
        told: set[tuple[str, str]] = set()  # (change, dedup key) of the messages that went out
        # Every new, escalated and resolved change goes out now, in as many messages as it takes:
        # one cut to fit would be lost, and which were cut would follow the order units ran in.
        for card in build_cards(items):
            try:
                await self._teams.post(card.payload)
            except ServiceError as exc:  # retried next run: the changes not posted stay pending
                log.warning("the Teams post failed; the next run posts it: %s", exc)
                break
            told.update((i.change, i.dedup_key) for i in card.items)
        for claim in claims:
            done = [p for p in claim.posts if (p.change, p.entry.dedup_key) in told]
            for _ in range(_ATTEMPTS):
                stored = await self._state.get(ALERT, claim.key)
                if stored is None:
                    break
                state = from_value(stored.value)
                state = posted(state, done, at, run) if done else released(state, run)
                try:
                    await self._state.put(ALERT, claim.key, to_value(state), etag=stored.etag)
                except ConflictError:
                    continue
                break

    async def _card_item(self, post: Post) -> CardItem:
        url = None
        record = note_record(post.subject)
        if record is not None and self._dataverse_url:
            table = await self._notes.table_name(record[0]) if self._notes is not None else record[0]
            url = record_url(self._dataverse_url, table, record[1])
        entry = post.entry
        return CardItem(
            post.change,
            entry.dedup_key,
            entry.code,
            entry.severity,
            entry.title,
            post.subject.name,
            entry.next_step,
            url,
        )

    async def _release(self, keys: list[str], run: str) -> None:
        for key in keys:
            with contextlib.suppress(Exception):  # best effort: the claim expires anyway
                for _ in range(_ATTEMPTS):
                    stored = await self._state.get(ALERT, key)
                    if stored is None:
                        break
                    state = from_value(stored.value)
                    freed = released(state, run)
                    if freed.note_claim is not None and freed.note_claim.by == run:
                        freed = replace(freed, note_claim=None)
                    if freed == state:
                        break
                    try:
                        await self._state.put(ALERT, key, to_value(freed), etag=stored.etag)
                    except ConflictError:
                        continue
                    break

    async def _unit_subjects(self, ukey: str) -> dict[str, Subject]:
        stored = await self._state.get(UNIT_SUBJECTS, ukey)
        if stored is None:
            return {}
        subjects: dict[str, Subject] = {}
        for key, raw in dict(stored.value.get("subjects") or {}).items():
            with contextlib.suppress(ValueError):
                subjects[key] = Subject.model_validate(raw)
        return subjects

    async def _remember(self, ukey: str, subjects: dict[str, Subject]) -> None:
        value = {"subjects": {k: s.model_dump() for k, s in sorted(subjects.items())}}
        for _ in range(_ATTEMPTS):
            stored = await self._state.get(UNIT_SUBJECTS, ukey)
            if stored is not None and stored.value == value:
                return
            if stored is None and not subjects:
                return  # nothing seen, nothing stored: most contracts of a batch, every day
            try:
                await self._state.put(UNIT_SUBJECTS, ukey, value, etag=stored.etag if stored else None)
            except ConflictError:
                continue
            return

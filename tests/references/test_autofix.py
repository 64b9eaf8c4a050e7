"""Auto-fix planning (pure) and applying through a writer that records what it is asked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from diagnostics.references.autofix import AccountRef, AutofixSettings, Plan, RefState, apply, plan
from diagnostics.references.match import Candidate, Party, choose, rank

AT = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
ON = AutofixSettings(map_accounts=True, reimport=True)


def _customer(name: str, *accounts: str, resolved: bool = False, pa_account: str | None = None) -> RefState:
    proposals = rank(Party(name), [Candidate(f"acc-{a}", a) for a in accounts])
    chosen = choose(proposals, ON.min_confidence)
    verdict = "confident" if chosen else ("ambiguous" if len(proposals) > 1 else "no candidate")
    return RefState(
        "customer",
        f"ref-{name}",
        name,
        resolved,
        (AccountRef(f"pa-{name}", name, pa_account, True),),
        chosen,
        verdict,
    )


def test_off_by_default_plans_nothing() -> None:
    assert (
        plan(
            [_customer("Tailspin Toys", "Tailspin Toys")],
            invoice_id="pi",
            invoice_name="G1",
            settings=AutofixSettings(),
        )
        == Plan()
    )


def test_a_confident_match_is_mapped_and_the_invoice_deleted_once_every_reference_resolves() -> None:
    refs = [_customer("Tailspin Toys", "Tailspin Toys"), RefState("currency", "USD", None, True)]
    planned = plan(refs, invoice_id="pi", invoice_name="G1", settings=ON)
    [mapping] = planned.maps
    assert (mapping.record_id, mapping.value, mapping.previous) == (
        "pa-Tailspin Toys",
        "acc-Tailspin Toys",
        None,
    )
    assert "to account Tailspin Toys (95%" in mapping.what
    assert planned.delete is not None
    assert planned.delete.record_id == "pi"


def test_an_ambiguous_match_is_never_applied_and_the_invoice_stays() -> None:
    refs = [_customer("Contoso", "Contoso Ltd", "Contoso Limited")]
    planned = plan(refs, invoice_id="pi", invoice_name="G1", settings=ON)
    assert planned.changes == ()
    assert any("ambiguous" in why for why in planned.not_applied)
    assert any("still unresolved (Contoso)" in why for why in planned.not_applied)


def test_a_provider_account_that_has_an_account_is_never_mapped_again() -> None:
    refs = [_customer("Tailspin Toys", "Tailspin Toys", pa_account="acc-other")]
    planned = plan(refs, invoice_id="pi", invoice_name="G1", settings=AutofixSettings(map_accounts=True))
    assert planned.maps == ()


def test_an_unresolved_subscription_keeps_the_invoice() -> None:
    refs = [_customer("Tailspin Toys", "Tailspin Toys"), RefState("subscription", "s1", "Azure 1", False)]
    planned = plan(refs, invoice_id="pi", invoice_name="G1", settings=ON)
    assert len(planned.maps) == 1
    assert planned.delete is None


def test_missing_privileges_apply_nothing_and_are_named() -> None:
    refs = [_customer("Tailspin Toys", "Tailspin Toys")]
    planned = plan(
        refs,
        invoice_id="pi",
        invoice_name="G1",
        settings=ON,
        missing_privileges=["prvDeletework365_providerinvoice"],
    )
    assert planned.changes == ()
    assert planned.missing_privileges == ("prvDeletework365_providerinvoice",)
    assert "prvDeletework365_providerinvoice" in planned.not_applied[0]


class Writer:
    def __init__(self, *, resolve: bool = True, usage: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self._resolve, self._usage = resolve, usage

    async def map_account(self, provider_account_id: str, account_id: str) -> None:
        self.calls.append(("map", provider_account_id, account_id))

    async def references_resolve(self) -> bool:
        self.calls.append(("reread",))
        return self._resolve

    async def has_usage(self, invoice_id: str) -> bool:
        self.calls.append(("usage", invoice_id))
        return self._usage

    async def delete_invoice(self, invoice_id: str) -> None:
        self.calls.append(("delete", invoice_id))


async def test_applying_maps_then_reads_again_then_deletes_recording_each_change() -> None:
    planned = plan(
        [_customer("Tailspin Toys", "Tailspin Toys")], invoice_id="pi", invoice_name="G1", settings=ON
    )
    writer, kept = Writer(), []

    async def record(change: dict[str, Any]) -> None:
        kept.append(change["kind"])

    applied = await apply(planned, writer, at=AT, dry_run=False, recorded=record)
    assert writer.calls == [
        ("map", "pa-Tailspin Toys", "acc-Tailspin Toys"),
        ("reread",),
        ("usage", "pi"),
        ("delete", "pi"),
    ]
    assert kept == ["map_account", "delete_invoice"]
    assert applied.deleted
    assert applied.changes[0]["at"] == AT.isoformat()
    assert applied.changes[0]["previous"] is None


async def test_an_invoice_with_usage_summaries_is_never_deleted() -> None:
    planned = plan(
        [_customer("Tailspin Toys", "Tailspin Toys")], invoice_id="pi", invoice_name="G1", settings=ON
    )
    writer = Writer(usage=True)
    applied = await apply(planned, writer, at=AT, dry_run=False)
    assert ("delete", "pi") not in writer.calls
    assert not applied.deleted
    assert any("usage summaries" in why for why in applied.not_applied)


async def test_a_reference_still_unresolved_after_the_mapping_keeps_the_invoice() -> None:
    planned = plan(
        [_customer("Tailspin Toys", "Tailspin Toys")], invoice_id="pi", invoice_name="G1", settings=ON
    )
    writer = Writer(resolve=False)
    applied = await apply(planned, writer, at=AT, dry_run=False)
    assert [c[0] for c in writer.calls] == ["map", "reread"]
    assert not applied.deleted


async def test_a_dry_run_writes_nothing_and_says_what_it_would_do() -> None:
    planned = plan(
        [_customer("Tailspin Toys", "Tailspin Toys")], invoice_id="pi", invoice_name="G1", settings=ON
    )
    writer = Writer()
    applied = await apply(planned, writer, at=AT, dry_run=True)
    assert writer.calls == []
    assert [c["what"].split()[:2] for c in applied.changes] == [["would", "map"], ["would", "delete"]]
    assert all(c["dry_run"] for c in applied.changes)

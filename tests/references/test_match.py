from diagnostics.references.match import Candidate, Party, choose, rank


def test_equal_names_once_suffixes_and_accents_are_set_aside_rank_first() -> None:
    candidates = [
        Candidate("a1", "Fabrikam Inc"),
        Candidate("a2", "Contoso Limited"),
        Candidate("a3", "Nord AB"),
    ]
    proposals = rank(Party("Contoso Ltd."), candidates)
    assert [p.candidate.id for p in proposals] == ["a2"]
    assert choose(proposals) == proposals[0]


def test_two_confident_candidates_are_ambiguous_and_never_chosen() -> None:
    candidates = [Candidate("a1", "Contoso Ltd"), Candidate("a2", "Contoso Limited")]
    proposals = rank(Party("Contoso"), candidates)
    assert len(proposals) == 2
    assert choose(proposals) is None


def test_same_web_domain_is_a_reason() -> None:
    proposals = rank(
        Party("Tailspin", domain="tailspintoys.com"), [Candidate("a1", "TT", "https://www.tailspintoys.com/")]
    )
    assert proposals[0].reasons == ("same web domain tailspintoys.com",)

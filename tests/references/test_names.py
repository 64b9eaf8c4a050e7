"""Names and domains as the account matcher reads them."""

import pytest

from diagnostics.references.domains import (
    host_of,
    is_shared,
    name_label,
    registrable,
    search_label,
    tenant_name,
)
from diagnostics.references.names import normalised_name, parse_name, search_tokens


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("Contoso Ltd.", "contoso"),
        ("CONTOSO LIMITED", "contoso"),
        ("The Contoso Company", "contoso"),
        ("Fabrikam, Inc.", "fabrikam"),
        ("Fabrikam Incorporated", "fabrikam"),
        ("Fabrikam Corp", "fabrikam"),
        ("Fabrikam LLC", "fabrikam"),
        ("Müller GmbH", "muller"),
        ("Mueller GmbH & Co. KG", "mueller"),
        ("Société Générale de Transport S.A.", "societe generale de transport"),
        ("Nordisk Ventil A/S", "nordisk ventil"),
        ("Håkansson Bygg AB", "hakansson bygg"),
        ("Rossi Costruzioni S.p.A.", "rossi costruzioni"),
        ("Kowalski Sp. z o.o.", "kowalski"),
        ("Van der Berg Logistiek B.V.", "van der berg logistiek"),
        ("Brouwerij Het Anker N.V.", "brouwerij het anker"),
        ("Contoso Pty Ltd", "contoso"),
        ("Contoso Sdn Bhd", "contoso"),
        ("Oy Pohjola Metsä Ab", "pohjola metsa"),
        ("García y Asociados S.L.", "garcia y asociado"),
        ("Alpine Ski House SARL", "alpine ski house"),
        ("Nakamura Seiki KK", "nakamura seiki"),
        ("Contoso S.A. de C.V.", "contoso"),
        ("Smith & Jones LLP", "smith jone"),
        ("Smith and Jones", "smith jone"),
        ("Contoso Intl", "contoso international"),
        ("Contoso Pharma", "contoso pharmaceutical"),
        ("Contoso Pharmaceuticals", "contoso pharmaceutical"),
        ("Litware Labs", "litware laboratory"),
        ("Margie’s Travel", parse_name("Margies Travel").key),
        ("I.B.M. Corp", "ibm"),
        ("Limited Editions Ltd", "limited edition"),
        ("AG", "ag"),  # never every word: a name that is only a legal form stays
        ("ソニー株式会社", "ソニー"),
    ],
)
def test_the_key_sets_aside_case_accents_punctuation_and_legal_forms(written: str, key: str) -> None:
    assert parse_name(written).key == key


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("The Tailspin Toys Ltd.", "tailspin toys"),
        ("O'Brien Holdings GmbH", "o brien holdings"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Rossi Costruzioni S.p.A.", "rossi costruzioni"),
        ("Contoso Pharma Intl", "contoso pharma intl"),
    ],
)
def test_the_normalised_name_keeps_the_words_as_written(written: str, words: str) -> None:
    assert normalised_name(written) == words


def test_the_legal_form_is_remembered_for_telling_entities_apart() -> None:
    assert parse_name("Contoso Ltd").regions == parse_name("Contoso Limited").regions == {"common-law"}
    assert parse_name("Contoso Inc.").regions == parse_name("Contoso Corporation").regions == {"us"}
    assert parse_name("Contoso GmbH").regions != parse_name("Contoso AG").regions
    assert parse_name("Contoso S.A.").regions == frozenset()  # used in too many countries to tell


def test_ag_in_the_middle_of_a_name_is_a_word_not_a_legal_form() -> None:
    assert parse_name("AG Barr plc").key == "ag barr"
    assert parse_name("Nordic AB Foods").key == "nordic ab food"


def test_a_trading_name_is_a_second_form_of_the_name() -> None:
    parsed = parse_name("Contoso Ltd t/a Contoso Coffee")
    assert [(f.words, f.source) for f in parsed.forms] == [
        (("contoso",), "name"),
        (("contoso", "coffee"), "trading name"),
    ]
    assert parsed.forms[1].text == "Contoso Coffee"
    assert [f.words for f in parse_name("Fabrikam (formerly Northwind Traders)").forms] == [
        ("fabrikam",),
        ("northwind", "trader"),
    ]
    assert [f.words for f in parse_name("Wingtip Toys d/b/a Wingtip").forms] == [
        ("wingtip", "toy"),
        ("wingtip",),
    ]


def test_a_bracketed_qualifier_stays_in_the_name_and_a_bracketed_name_is_a_form() -> None:
    assert [f.words for f in parse_name("Contoso (UK) Limited").forms] == [("contoso", "uk")]
    assert [f.words for f in parse_name("Contoso (Pty) Ltd").forms] == [("contoso",)]
    assert [f.words for f in parse_name("International Business Machines (IBM)").forms] == [
        ("international", "business", "machine"),
        ("ibm",),
    ]


def test_letters_written_out_are_a_second_spelling() -> None:
    assert {f.words for f in parse_name("Müller Maschinenbau").forms} == {
        ("muller", "maschinenbau"),
        ("mueller", "maschinenbau"),
    }
    assert [f.words for f in parse_name("Mueller Maschinenbau").forms] == [("mueller", "maschinenbau")]


def test_words_weigh_by_how_much_they_say() -> None:
    form = parse_name("Contoso Group UK of Lisbon").forms[0]
    assert dict(zip(form.words, form.weights, strict=True)) == {
        "contoso": 1.0,
        "group": 0.35,
        "uk": 0.5,
        "of": 0.2,
        "lisbon": 1.0,
    }


def test_search_tokens_are_distinctive_and_safe_in_an_odata_literal() -> None:
    assert search_tokens("Contoso Pharma Ltd") == ("contoso", "pharma")
    assert search_tokens("The Northwind Group International Holdings Ltd") == ("northwind",)
    assert search_tokens("Müller GmbH") == ("müller",)
    assert search_tokens("O'Brien & Sons (Plumbing) Ltd") == ("plumbing", "brien", "sons")  # in "O'Brien"
    assert search_tokens("A1_%' Ltd") == ()
    assert search_tokens("Ltd") == ()
    for token in search_tokens("Wide-World Importers' 100% Ltd [UK]"):
        assert token.isalnum()
        assert "'" not in token
        assert "_" not in token
        assert "%" not in token


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://www.contoso.com/about?x=1", "contoso.com"),
        ("contoso.com.", "contoso.com"),
        ("admin@Contoso.COM", "contoso.com"),
        ("http://shop.contoso.co.uk:8080", "shop.contoso.co.uk"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("contoso", None),
        ("", None),
        (None, None),
        ("10.0.0.1", None),
        ("not a domain.com", None),
    ],
)
def test_host_of_reads_websites_urls_and_mail_addresses(value: str | None, host: str | None) -> None:
    assert host_of(value) == host


def test_registrable_domain_name_and_tenant() -> None:
    assert registrable("shop.contoso.co.uk") == "contoso.co.uk"
    assert registrable("eu.contoso.com") == "contoso.com"
    assert name_label("shop.contoso.com.au") == "contoso"
    assert tenant_name("contoso.onmicrosoft.com") == "contoso"
    assert tenant_name("contoso.com") is None
    assert is_shared("gmail.com")
    assert is_shared("mail.outlook.com")
    assert not is_shared("contoso.com")


@pytest.mark.parametrize(
    ("domain", "label"),
    [
        ("https://www.contoso.co.uk/about", "contoso"),
        ("contoso.onmicrosoft.com", "contoso"),
        ("admin@tailspin-toys.com", "tailspin-toys"),
        ("gmail.com", None),
        ("ab.com", None),  # too short to narrow anything
        (None, None),
        ("not a domain", None),
    ],
)
def test_search_label_is_what_to_look_for_in_websites(domain: str | None, label: str | None) -> None:
    assert search_label(domain) == label


@pytest.mark.parametrize(
    ("written", "key", "mark"),
    [
        ("Contoso Ltd (old)", "contoso", "(old)"),
        ("ZZ Contoso - DO NOT USE", "contoso", "zz - do not use"),
        ("Contoso [duplicate]", "contoso", "[duplicate]"),
        ("Contoso Ltd - Inactive", "contoso", "- inactive"),
        ("Old Mutual plc", "old mutual", ""),  # a company, not a mark
        ("Closed Loop Recycling", "closed loop recycling", ""),
        ("Contoso - London", "contoso london", ""),
    ],
)
def test_a_name_marking_the_account_as_no_longer_in_use_is_read(written: str, key: str, mark: str) -> None:
    parsed = parse_name(written)
    assert (parsed.key, parsed.retired) == (key, mark)

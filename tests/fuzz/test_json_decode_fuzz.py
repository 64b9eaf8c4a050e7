"""`decode_json`, which reads every Dataverse answer, gives what `json.loads` gives for any JSON text:
the same values of the same types (an integer of any size stays an integer, a float the same
float, NaN and the infinities as the standard library reads them), or the same kind of error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from diagnostics.adapters.http import decode_json
from tests.json_support import same_json

_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),  # any code point, lone surrogates too
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
# Number literals as a server may write them, beyond what `json.dumps` writes.
_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?\Z")


def _outcome(decode: Any, data: bytes | str) -> Any:
    try:
        return decode(data)
    except (ValueError, RecursionError) as exc:
        return type(exc)


@given(_JSON, st.booleans(), st.integers(0, 2))
def test_any_json_text_decodes_as_the_standard_library_decodes_it(
    value: Any, ascii_only: bool, form: int
) -> None:
    text = json.dumps({"value": [value]}, ensure_ascii=ascii_only)
    data: bytes | str = text if form == 0 else text.encode("utf-8", "surrogatepass")
    if form == 2:
        data = b"\xef\xbb\xbf" + data.encode() if isinstance(data, str) else b"\xef\xbb\xbf" + data
    expected, got = _outcome(json.loads, data), _outcome(decode_json, data)
    assert same_json(got, expected) if not isinstance(expected, type) else got is expected


@given(_NUMBER, st.sampled_from(["", " ", "\n"]))
def test_any_number_decodes_to_the_same_value_and_type(number: str, space: str) -> None:
    text = f'{{"value": [{space}{number}{space}]}}'
    expected, got = _outcome(json.loads, text), _outcome(decode_json, text)
    assert same_json(got, expected) if not isinstance(expected, type) else got is expected


@given(st.binary(max_size=40))
def test_any_bytes_decode_or_fail_as_the_standard_library_does(noise: bytes) -> None:
    data = b'{"value": ["' + noise + b'"]}'
    expected, got = _outcome(json.loads, data), _outcome(decode_json, data)
    assert same_json(got, expected) if not isinstance(expected, type) else got is expected

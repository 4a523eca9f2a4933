"""The parser: every message is a value or a rejection with its reason."""

from __future__ import annotations

import pytest

from streams.codec import Rejection, Tombstone, TradeMessage, decode, decode_many

GOOD = b'{"trade_id": "T1", "member": "M", "instrument": "X", "quantity": -3, "price": 9.5}'


def test_a_batch_of_good_messages_decodes_in_one_pass() -> None:
    messages, positions, rejections = decode_many("trades", [GOOD, GOOD])
    assert positions == [0, 1] and rejections == []
    assert messages[0] == TradeMessage("T1", "M", "X", -3.0, 9.5)


def test_a_bad_message_is_refused_with_its_reason_and_the_rest_is_kept() -> None:
    messages, positions, rejections = decode_many(
        "trades", [GOOD, b"{", None, GOOD.replace(b"9.5", b"0"), GOOD])
    assert positions == [0, 4] and len(messages) == 2
    assert [p for p, _ in rejections] == [1, 2, 3]
    assert "truncated" in rejections[0][1]
    assert "null" in rejections[1][1]
    assert "$.price" in rejections[2][1]


@pytest.mark.parametrize(("topic", "value", "fragment"), [
    ("prices", b'{"instrument": "X", "price": NaN}', "malformed"),
    ("prices", b'{"instrument": "X", "price": 1e999}', "out of range"),
    ("collateral", b'{"member": "M", "initial_margin": 1}', "cash"),
    ("members", b'{"member": "", "default_fund": 1}', "$.member"),
    ("scenarios", b'{"scenario": "S", "shocks": {"X": "big"}}', "$.shocks"),
    ("resources", b'{"skin_in_the_game": 1, "liquid_resources": [{"name": "x", '
                  b'"type": "gold", "amount": 1}]}', "gold"),
])
def test_invalid_values_are_refused(topic: str, value: bytes, fragment: str) -> None:
    result = decode(topic, None, value)
    assert isinstance(result, Rejection) and fragment in result.reason


def test_a_tombstone_removes_what_its_key_names_where_the_contract_allows() -> None:
    assert decode("members", b"M1", None) == Tombstone("M1")
    assert isinstance(decode("trades", b"M1", None), Rejection)


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode("trades", None, GOOD[:-1] + b', "venue": "XEUR"}'), TradeMessage)

"""docs/contract.md against the code: its examples decode, and it names every output and metric.

Every line ``Example (`ccp.TOPIC`, key `KEY`):`` is followed by a ```json block, which
must decode with the service's own decoder, use only fields its struct defines, and
carry the key its topic is keyed by. Every input topic has exactly one such example;
every output topic and every metric name is mentioned, so the document cannot fall
behind the code unnoticed.
"""

from __future__ import annotations

import json
import re
import time
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from streams import metrics
from streams import topics as t
from streams.codec import (
    MESSAGE_TYPES,
    Plausibility,
    Rejection,
    ScenarioMessage,
    Tombstone,
    decode,
)
from streams.settings import Settings

CONTRACT = Path(__file__).resolve().parents[2] / "docs/contract.md"
PREFIX = Settings().topic_prefix  # the document uses the default prefix, "ccp."
EXAMPLE = re.compile(
    r"^Example \(`(?P<topic>[^`]+)`, key `(?P<key>[^`]+)`\):[ \t]*\n"
    r"(?:[ \t]*\n)*```json[ \t]*\n(?P<body>.*?)\n```",
    re.MULTILINE | re.DOTALL)
# The field a topic's key must equal; resources has one key-less state.
KEY_FIELD = {t.TRADES: "member", t.COLLATERAL: "member", t.SETTLEMENTS: "member",
             t.PRICES: "instrument", t.INSTRUMENTS: "instrument", t.MEMBERS: "member",
             t.SCENARIOS: "scenario"}
UNKEYED = {t.RESOURCES}


def contract() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def examples() -> list[tuple[str, str, str]]:
    """Every example as (short topic, key, JSON text)."""
    return [(m["topic"].removeprefix(PREFIX), m["key"], m["body"])
            for m in EXAMPLE.finditer(contract())]


def example_ids() -> list[str]:
    return [f"{topic}:{key}" for topic, key, _ in examples()]


def nested_structs(annotation: Any) -> list[type[msgspec.Struct]]:
    """The structs inside a field's type: ``list[S]``, ``S | None``, ``Annotated[S, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [annotation]
    return [s for arg in typing.get_args(annotation) for s in nested_structs(arg)]


def undefined_fields(value: Any, struct: type[msgspec.Struct], path: str) -> list[str]:
    """The paths of fields in ``value`` that ``struct`` (or a nested struct) does not define."""
    if not isinstance(value, dict):
        return []
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    unknown = [f"{path}.{name}" for name in value if name not in fields]
    for name, item in value.items():
        if name not in fields:
            continue
        for inner in nested_structs(fields[name].type):
            items = item if isinstance(item, list) else [item]
            for i, entry in enumerate(items):
                where = f"{path}.{name}[{i}]" if isinstance(item, list) else f"{path}.{name}"
                unknown += undefined_fields(entry, inner, where)
    return unknown


def test_the_contract_exists_and_every_example_line_is_well_formed() -> None:
    lines = [line for line in contract().splitlines() if line.startswith("Example (")]
    assert lines, "docs/contract.md has no examples"
    assert len(lines) == len(examples()), (
        "an 'Example (`TOPIC`, key `KEY`):' line without a ```json block right after it, "
        f"or with another form: {lines}")


def test_every_input_topic_has_exactly_one_example() -> None:
    found = [topic for topic, _, _ in examples()]
    assert sorted(found) == sorted(t.INPUTS), (
        f"examples for {sorted(found)}, inputs are {sorted(t.INPUTS)}")


def test_every_input_topic_is_either_keyed_by_a_field_or_declared_unkeyed() -> None:
    assert set(KEY_FIELD) | UNKEYED == set(t.INPUTS)
    assert set(MESSAGE_TYPES) == set(t.INPUTS)


@pytest.mark.parametrize(("topic", "key", "body"), examples(), ids=example_ids())
def test_an_example_decodes_with_the_services_decoder(topic: str, key: str, body: str) -> None:
    assert topic in t.INPUTS, f"{PREFIX}{topic} is not an input topic"
    message = decode(topic, key.encode(), body.encode())
    assert not isinstance(message, Rejection), f"{PREFIX}{topic}: {message.reason}"
    assert not isinstance(message, Tombstone)
    assert isinstance(message, MESSAGE_TYPES[topic])
    if isinstance(message, ScenarioMessage):  # plausible too, under the default bounds
        assert Plausibility().scenario_problem(message) is None


@pytest.mark.parametrize(("topic", "key", "body"), examples(), ids=example_ids())
def test_an_examples_key_is_its_member_instrument_or_scenario(topic: str, key: str,
                                                               body: str) -> None:
    if topic in KEY_FIELD:
        field = KEY_FIELD[topic]
        assert key == json.loads(body)[field], f"{PREFIX}{topic} is keyed by {field}"


@pytest.mark.parametrize(("topic", "key", "body"), examples(), ids=example_ids())
def test_an_example_uses_only_fields_its_struct_defines(topic: str, key: str,
                                                         body: str) -> None:
    value = json.loads(body)
    assert isinstance(value, dict)
    assert undefined_fields(value, MESSAGE_TYPES[topic], "$") == []


@pytest.mark.parametrize(("topic", "key", "body"), examples(), ids=example_ids())
def test_an_examples_event_time_is_in_seconds_and_not_in_the_future(topic: str, key: str,
                                                                     body: str) -> None:
    ts = json.loads(body).get("ts")
    if ts is not None:
        assert 0 < ts < time.time() + 300, f"{PREFIX}{topic}: ts {ts} is not epoch seconds"


def test_the_nested_field_check_finds_a_misspelt_resource_entry_field() -> None:
    value = {"skin_in_the_game": 1, "liquid_resources": [
        {"name": "x", "type": "other", "amount": 1}, {"name": "y", "type": "other",
                                                      "amount": 1, "providr": "M1"}]}
    assert undefined_fields(value, MESSAGE_TYPES[t.RESOURCES], "$") == [
        "$.liquid_resources[1].providr"]


def mentioned(name: str, text: str) -> bool:
    """Whether ``name`` occurs as a whole name (a counter also with its ``_total``)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?:_total)?(?![\w-])", text) is not None


@pytest.mark.parametrize("topic", t.OUTPUTS)
def test_every_output_topic_is_documented(topic: str) -> None:
    assert mentioned(PREFIX + topic, contract()), f"{PREFIX}{topic} is not in the contract"


def metric_names() -> list[str]:
    return sorted(value for name, value in vars(metrics).items()
                  if name.isupper() and isinstance(value, str) and value.startswith("ccp_"))


def test_the_metric_names_are_found() -> None:
    assert len(metric_names()) > 20


@pytest.mark.parametrize("name", metric_names())
def test_every_metric_is_documented(name: str) -> None:
    assert mentioned(name, contract()), f"metric {name} is not in the contract"

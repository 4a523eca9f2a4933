"""Settings: a flag beats its COVER2_* variable, which beats the default."""

from __future__ import annotations

import argparse

import pytest

from streams import settings as config
from streams.tools.settings import ToolSettings


def parse(*argv: str, names: tuple[str, ...] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, names, ToolSettings)
    return parser.parse_args(list(argv))


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    environ = {"COVER2_WEB_PORT": "7000", "COVER2_CURRENCY": "EUR"}
    settings = config.load(ToolSettings, parse("--web-port", "8000"), environ)
    assert settings.web_port == 8000
    assert settings.currency == "EUR"
    assert settings.topic_prefix == "ccp."


def test_defaults_of_a_command_sit_under_flags_and_variables() -> None:
    defaults = {"session_timeout": 2.0}
    assert config.load(ToolSettings, parse(), {}, defaults).session_timeout == 2.0
    environ = {"COVER2_SESSION_TIMEOUT": "12"}
    assert config.load(ToolSettings, parse(), environ, defaults).session_timeout == 12


def test_booleans_and_the_contracts_short_port_flag() -> None:
    assert config.load(ToolSettings, parse("--no-demo"), {}).demo is False
    assert config.load(ToolSettings, parse(), {"COVER2_DEMO": "false"}).demo is False
    port = parse("--port", "19092", names=("broker_port",))
    assert config.load(ToolSettings, port, {}).broker_port == 19092


def test_a_bad_variable_says_which_and_what_it_is_for() -> None:
    with pytest.raises(SystemExit, match="COVER2_WEB_PORT='many' is not a valid int"):
        config.load(ToolSettings, parse(), {"COVER2_WEB_PORT": "many"})
    with pytest.raises(SystemExit, match="unknown scale"):
        config.load(ToolSettings, parse(), {"COVER2_SCALE": "huge"})


def test_every_setting_is_listed_with_its_variable() -> None:
    text = config.describe(ToolSettings)
    for name in ("COVER2_BROKER", "COVER2_WEB_PORT", "COVER2_TOPIC_PREFIX", "COVER2_CURRENCY",
                 "COVER2_PUBLISH_INTERVAL", "COVER2_FETCH_WAIT", "COVER2_MINIMUM_TRANSFER"):
        assert name in text

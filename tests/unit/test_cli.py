"""The command line says what it does: each command's --help shows the defaults it really
uses, and a mistyped flag is refused by the command's own parser."""

from __future__ import annotations

import ast
import re

import pytest

from streams import settings as config
from streams.cli import COMMANDS, main, parsers, settings_type

SHOWN = re.compile(r"\[(COVER2_[A-Z0-9_]+), default (.+)\]$")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_the_defaults_the_command_uses(name: str) -> None:
    command = COMMANDS[name]
    _, subparsers = parsers()
    parser = subparsers[name]
    used = config.load(settings_type(command), parser.parse_args([]), {}, command.defaults)
    flags = [action for action in parser._actions if action.dest != "help"]
    assert flags
    for action in flags:
        shown = SHOWN.search(action.help or "")
        assert shown, action.help
        assert shown[1] == config.env_name(action.dest)
        # Passing the default the help shows changes nothing.
        flag = action.option_strings[0]
        text = ast.literal_eval(shown[2])
        argv = ([flag] if text is True else [f"--no-{flag[2:]}"] if text is False
                else [flag, str(text)])
        assert config.load(settings_type(command), parser.parse_args(argv), {},
                           command.defaults) == used, (name, flag)


def test_the_embedded_commands_show_their_short_session_timeout() -> None:
    _, subparsers = parsers()
    assert "default 2.0]" in subparsers["run"].format_help().replace("\n", " ").replace(
        "  ", " ")


def test_a_mistyped_flag_is_refused_by_the_commands_parser(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["worker", "--web-prot", "7000"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "usage: cover2 worker" in error and "--web-prot" in error


def test_an_unknown_log_level_is_one_clear_line() -> None:
    with pytest.raises(SystemExit, match="unknown log level 'verbose'"):
        main(["worker", "--log-level", "verbose"])


def test_cover2_run_says_why_a_child_ended() -> None:
    from streams.tools.run import ended

    assert ended(70) == "exit code 70: a failure; its ERROR line and traceback are above"
    assert ended(2) == "exit code 2: it could not start; its message is above"
    assert ended(-9) == "killed by SIGKILL"
    assert ended(1) == "exit code 1: its log is above"

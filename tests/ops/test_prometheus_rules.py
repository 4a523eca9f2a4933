"""Prometheus and Alertmanager configuration through the real tools, and its conventions.

`promtool` (Debian's ``prometheus`` package) checks the scrape config and the rules and runs
the rule unit tests in ``prometheus/tests/``; `amtool` (``prometheus-alertmanager``) checks
the Alertmanager config and shows where each alert is routed. A missing tool fails the tests.
The rule and test files are read with `yaml.safe_load`; the count of rules read is held
against promtool's own.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import metrics, tally, topics
from streams.tools import dashboards

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES = PROMETHEUS / "rules" / "cover2.rules.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = PROMETHEUS / "alertmanager.yml"

SEVERITIES = {"critical", "warning", "info"}
TEAMS = {"risk", "ops"}
ANNOTATIONS = ("summary", "description", "runbook")
RECORDING_GROUP = "cover2.recording"
# Receivers of prometheus/alertmanager.yml: margin-call automation first, then by severity.
AUTOMATION = "margin-call-automation"
SEVERITY_RECEIVER = {"critical": "ops-pager", "warning": "ops-webhook", "info": "ops-webhook"}
MARGIN_CALL = {"action": "margin_call"}


def tool(name: str, package: str) -> str:
    """The path of ``name``; a missing tool is a failure, never a skip."""
    path = shutil.which(name)
    assert path, f"{name} is missing: install Debian's {package} package"
    return path


def run(*argv: str) -> str:
    """Run a tool from the repository root; its stdout, or a failure with everything it said."""
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def promtool(*argv: str) -> str:
    return run(tool("promtool", "prometheus"), *argv)


def amtool(*argv: str) -> str:
    return run(tool("amtool", "prometheus-alertmanager"), *argv)


@functools.cache
def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load(RULES)["groups"]
    return groups


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"]
            if "alert" in rule}


def recorded() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"]
            if "record" in rule}


def routed_to(labels: dict[str, str]) -> list[str]:
    """The receivers Alertmanager's routing tree picks for an alert with ``labels``."""
    out = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 *(f"{name}={value}" for name, value in sorted(labels.items())))
    return out.strip().split(",")


# --- the tools --------------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_finds_the_rules_beside_it() -> None:
    out = promtool("check", "config", str(CONFIG))
    assert "SUCCESS: 1 rule files found" in out, out


def test_promtool_accepts_the_rules_and_counts_what_is_read_here() -> None:
    out = promtool("check", "rules", "--lint=all", str(RULES))
    found = re.search(r"SUCCESS: (\d+) rules found", out)
    assert found, out
    assert int(found[1]) == sum(len(group["rules"]) for group in rule_groups())


def test_the_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    promtool("test", "rules", *map(str, RULE_TESTS))


def test_amtool_accepts_the_alertmanager_config() -> None:
    out = amtool("check-config", str(ALERTMANAGER))
    assert "SUCCESS" in out, out


def test_a_margin_call_reaches_the_automation_and_the_pager() -> None:
    labels = {"alertname": "Cover2GroupOverMarginCallLevel", "group": "A",
              "severity": "critical", **MARGIN_CALL}
    assert routed_to(labels) == [AUTOMATION, SEVERITY_RECEIVER["critical"]]


def test_a_plain_warning_reaches_only_the_ops_webhook() -> None:
    assert routed_to({"alertname": "Cover2PricesStale", "severity": "warning"}) == [
        SEVERITY_RECEIVER["warning"]]


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_is_routed_by_its_severity_and_its_action(name: str) -> None:
    labels = {"alertname": name, "group": "A", **alerts()[name]["labels"]}
    automation = [AUTOMATION] if labels.get("action") == MARGIN_CALL["action"] else []
    assert routed_to(labels) == [*automation, SEVERITY_RECEIVER[labels["severity"]]]


# --- conventions of the rules -----------------------------------------------------------------


def test_the_recording_rules_are_those_the_dashboards_read() -> None:
    assert recorded() == set(dashboards.RECORDING_RULES)
    assert rule_groups()[0]["name"] == RECORDING_GROUP


def test_the_call_level_alert_asks_for_margin_call_automation() -> None:
    automated = {name for name, rule in alerts().items()
                 if rule["labels"].get("action") == MARGIN_CALL["action"]}
    assert automated == {"Cover2GroupOverMarginCallLevel"}


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_has_severity_team_summary_description_and_runbook(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"].get("severity") in SEVERITIES
    assert rule["labels"].get("team") in TEAMS
    for annotation in ANNOTATIONS:
        assert str(rule["annotations"].get(annotation) or "").strip(), annotation


def test_rules_read_only_metrics_the_worker_exports() -> None:
    exported = {value for value in vars(metrics).values()
                if isinstance(value, str) and value.startswith("ccp_")}
    known = {f"{name}{suffix}" for name in exported
             for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    text = RULES.read_text()
    used = set(re.findall(r"(?<![\w:])ccp_[a-z0-9_]+", text))
    assert used <= known, used - known
    assert set(re.findall(r"\bcover2:[a-z0-9_:]+", text)) <= recorded()


def test_rules_name_only_topics_and_outcomes_the_worker_counts() -> None:
    text = RULES.read_text()
    named = {value for values in re.findall(r'\btopic=~?"([^"]+)"', text)
             if "{{" not in values for value in values.split("|")}
    assert named <= set(topics.INPUTS), named - set(topics.INPUTS)
    outcomes = set(re.findall(r'\boutcome="([^"]+)"', text))
    assert outcomes <= set(tally.OUTCOMES), outcomes - set(tally.OUTCOMES)


# --- the unit tests cover every alert ---------------------------------------------------------


def alert_cases() -> list[dict[str, Any]]:
    return [case for path in RULE_TESTS for test in load(path)["tests"]
            for case in test.get("alert_rule_test") or []]


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_is_tested_firing_and_silent(name: str) -> None:
    cases = [case for case in alert_cases() if case["alertname"] == name]
    assert any(case.get("exp_alerts") for case in cases), f"{name} is never tested firing"
    assert any(not case.get("exp_alerts") for case in cases), f"{name} is never tested silent"


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.name)
def test_unit_tests_evaluate_the_recording_rules_first(path: Path) -> None:
    # Without an order promtool evaluates the groups in a random one, and an alert on a
    # recording rule would see this evaluation's value or the previous one by chance.
    order = load(path).get("group_eval_order") or []
    assert order[:1] == [RECORDING_GROUP]
    assert sorted(order) == sorted(group["name"] for group in rule_groups())


def test_inhibit_rules_name_existing_alerts() -> None:
    matchers = [matcher for rule in load(ALERTMANAGER)["inhibit_rules"]
                for side in ("source_matchers", "target_matchers") for matcher in rule[side]]
    named = {name for matcher in matchers if matcher.startswith("alertname")
             for name in re.findall(r"[A-Za-z0-9]+", matcher.split("=", 1)[1].strip('~"'))}
    assert named and named <= set(alerts()), named - set(alerts())

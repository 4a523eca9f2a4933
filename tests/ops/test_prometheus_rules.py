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
# The one alert margin-call automation acts on (a call WAS issued), and the one that says a
# group is over its call level with no call issued (for a risk manager, never for automation).
CALL_ISSUED = "Cover2GroupMarginCallIssued"
OVER_CALL_LEVEL_WITHOUT_CALL = "Cover2GroupOverMarginCallLevelWithoutCall"
WARNING_LEVEL = "Cover2GroupOverMarginWarningLevel"


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
    labels = {"alertname": CALL_ISSUED, "group": "A", "severity": "critical", **MARGIN_CALL}
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
    assert automated == {CALL_ISSUED}


def test_automation_is_asked_only_for_calls_that_were_issued() -> None:
    # The level of a group says a member is over its call level, not that a call went out (a
    # shortfall under the minimum transfer amount is never called): the alert reads the count
    # of calls issued, of kind "call" only, summed over the workers that issue them.
    rule = alerts()[CALL_ISSUED]
    expr = rule["expr"]
    assert "ccp_group_margin_level" not in expr
    assert re.search(r'increase\(ccp_group_margin_calls_total\{kind="call"\}\[\d+m\]\)', expr)
    assert "kind=\"warning\"" not in expr
    assert expr.lstrip().startswith("sum by (job, group) (")
    assert rule["labels"]["severity"] == "critical"
    assert "were issued" in rule["annotations"]["description"]
    assert "issued" in rule["annotations"]["summary"]


def test_a_group_over_its_call_level_without_a_call_is_for_a_risk_manager() -> None:
    rule = alerts()[OVER_CALL_LEVEL_WITHOUT_CALL]
    assert "action" not in rule["labels"], "automation acts on issued calls only"
    assert rule["labels"]["severity"] == "warning" and rule["labels"]["team"] == "risk"
    expr = rule["expr"]
    assert "ccp_group_margin_level" in expr and "== 2" in expr
    assert re.search(r'unless on \(job, group\)', expr)
    assert 'ccp_group_margin_calls_total{kind="call"}' in expr
    assert rule.get("for"), "over the call level for some minutes, not for one evaluation"
    assert "minimum transfer amount" in rule["annotations"]["description"]
    assert routed_to({"alertname": OVER_CALL_LEVEL_WITHOUT_CALL, "group": "A",
                      **rule["labels"]}) == [SEVERITY_RECEIVER["warning"]]


def test_over_the_call_level_without_a_call_is_a_unit_test_case() -> None:
    # One promtool test where a group is at level 2 and no call is issued: the automation
    # alert stays silent and the risk manager's alert fires.
    found = False
    for path in RULE_TESTS:
        for test in load(path)["tests"]:
            cases = test.get("alert_rule_test") or []
            silent = {case["eval_time"] for case in cases
                      if case["alertname"] == CALL_ISSUED and not case.get("exp_alerts")}
            fired = {(case["eval_time"], alert["exp_labels"]["group"]) for case in cases
                     if case["alertname"] == OVER_CALL_LEVEL_WITHOUT_CALL
                     for alert in case.get("exp_alerts") or []}
            series = [item["series"] for item in test["input_series"]]
            for time, group in fired:
                called = [name for name in series if "margin_calls_total" in name
                          and f'group="{group}"' in name and 'kind="call"' in name]
                level = [name for name in series if name.startswith("ccp_group_margin_level")
                         and f'group="{group}"' in name]
                if level and not called and time in silent:
                    found = True
    assert found


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


def inhibitions() -> list[tuple[set[str], set[str], list[str]]]:
    """(source alert names, target alert names, equal) of each inhibit rule."""
    out = []
    for rule in load(ALERTMANAGER)["inhibit_rules"]:
        sides = []
        for side in ("source_matchers", "target_matchers"):
            names: set[str] = set()
            for matcher in rule[side]:
                if matcher.startswith("alertname"):
                    value = matcher.split("=", 1)[1].strip('~"')
                    names |= {name for name in alerts() if re.fullmatch(value, name)}
            sides.append(names)
        out.append((sides[0], sides[1], rule.get("equal") or []))
    return out


def test_a_call_level_alert_holds_back_the_groups_warning_level_alert() -> None:
    for source in (CALL_ISSUED, OVER_CALL_LEVEL_WITHOUT_CALL):
        assert any(source in sources and WARNING_LEVEL in targets and set(equal) == {"job", "group"}
                   for sources, targets, equal in inhibitions()), source


def test_nothing_holds_back_the_alert_automation_acts_on() -> None:
    assert all(CALL_ISSUED not in targets for _, targets, _ in inhibitions())


def webhooks() -> dict[str, list[dict[str, Any]]]:
    return {receiver["name"]: receiver.get("webhook_configs") or []
            for receiver in load(ALERTMANAGER)["receivers"]}


def test_receivers_are_https_placeholders_that_never_resolve() -> None:
    assert set(webhooks()) == {AUTOMATION, *SEVERITY_RECEIVER.values()}
    text = ALERTMANAGER.read_text()
    for name, configs in webhooks().items():
        assert configs, name
        for config in configs:
            url = config["url"]
            assert url.startswith("https://"), f"{name}: {url}"
            # Placeholders: RFC 2606's .invalid never resolves, so no service that happens to
            # take the name on the network can receive the alerts.
            assert url.split("/")[2].endswith(".invalid"), f"{name}: {url}"
        # Each says it is one in the comment just above it, and shows the way to a real
        # endpoint.
        lines = text[:text.index(f"  - name: {name}\n")].splitlines()
        comment = []
        while lines and lines[-1].startswith("  #"):
            comment.insert(0, lines.pop())
        above = "\n".join(comment)
        assert above.startswith("  # PLACEHOLDER"), name
        assert "https://" in above and "_file: /run/secrets/" in above, name


def test_receiver_credentials_are_files_and_tls_is_verified() -> None:
    inline = re.compile(r"^\s*#?\s*(password|credentials|bearer_token):", re.MULTILINE)
    assert not inline.search(ALERTMANAGER.read_text()), "a credential is named by its file"
    for name, configs in webhooks().items():
        for config in configs:
            http = config.get("http_config") or {}
            assert not (http.get("tls_config") or {}).get("insecure_skip_verify"), name


def test_inhibit_rules_name_existing_alerts() -> None:
    matchers = [matcher for rule in load(ALERTMANAGER)["inhibit_rules"]
                for side in ("source_matchers", "target_matchers") for matcher in rule[side]]
    named = {name for matcher in matchers if matcher.startswith("alertname")
             for name in re.findall(r"[A-Za-z0-9]+", matcher.split("=", 1)[1].strip('~"'))}
    assert named and named <= set(alerts()), named - set(alerts())

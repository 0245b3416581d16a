"""deploy/observability (issue 18): the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``, synthetic series), every alert is tested, documented and labelled, only the
metrics contract's series are queried (rules and the Grafana dashboard), and the Kubernetes PrometheusRule
carries exactly rules.yml. Fast: promtool only, no platform (tests/test_prometheus_alerts_e2e.py runs a real
Prometheus against one)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from e2e_platform import load_script

ROOT = Path(__file__).resolve().parent.parent
obs = load_script("scripts/observability.py", "upgestao_observability")
OPERATIONS = ROOT / "docs" / "operations.md"
# the labels an annotation may print: bounded ones only (docs/operations.md, "Metrics")
BOUNDED_LABELS = {"service", "queue", "job", "process", "instance", "route", "method", "status", "consumer"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    if not Path(obs.PROMTOOL_BIN).is_file():
        pytest.fail(f"{obs.PROMTOOL_BIN} is missing: `make observability-deps` (as root) installs Debian's "
                    "prometheus package (make test does it first)")
    return subprocess.run([obs.PROMTOOL_BIN, *args], capture_output=True, text=True, timeout=120,
                          cwd=obs.OBSERVABILITY)


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", str(obs.RULES))
    assert result.returncode == 0, f"promtool check rules:\n{result.stdout}{result.stderr}"
    assert f"SUCCESS: {len(obs.alerts())} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    result = promtool("test", "rules", str(obs.RULE_TESTS))
    assert result.returncode == 0, f"promtool test rules:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout, result.stdout


def test_the_rule_tests_can_fail(tmp_path):
    """The unit tests see a threshold move: the relay-lag rule at >= 30 s fires at exactly 30 s."""
    rules = obs.RULES.read_text().replace("upgestao_outbox_oldest_unsent_age_seconds) > 30",
                                          "upgestao_outbox_oldest_unsent_age_seconds) >= 30")
    assert rules != obs.RULES.read_text()
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "rules.test.yml").write_text(obs.RULE_TESTS.read_text())
    result = subprocess.run([obs.PROMTOOL_BIN, "test", "rules", "rules.test.yml"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode != 0 and "UpgestaoRelayLag" in result.stdout + result.stderr


def test_every_alert_has_tests_that_see_it_fire_and_stay_silent():
    tests = yaml.safe_load(obs.RULE_TESTS.read_text())["tests"]
    fired, silent = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = [rule["alert"] for rule in obs.alerts()]
    assert len(names) == len(set(names)), "two alerts of one name"
    assert set(names) == fired, f"alerts never seen firing: {sorted(set(names) - fired)}"
    assert set(names) == silent, f"alerts never seen silent: {sorted(set(names) - silent)}"


def test_the_alerts_the_issue_asks_for_are_there():
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in obs.alerts()}
    assert "upgestao_outbox_oldest_unsent_age_seconds) > 30" in exprs["UpgestaoRelayLag"]
    assert "parked|parking" in exprs["UpgestaoMessagesParked"] and "> 0" in exprs["UpgestaoMessagesParked"]
    assert 'queue="upgestao.unrouted"' in exprs["UpgestaoUnroutedMessages"]
    assert "> 60" in exprs["UpgestaoAuditCheckpointStalled"]
    assert "upgestao_audit_records_ingested_total" in exprs["UpgestaoAuditCheckpointStalled"]
    assert exprs["UpgestaoAuditIngestLag"].startswith("histogram_quantile(0.99,")
    assert exprs["UpgestaoAuditIngestLag"].endswith("> 10")
    assert 'status=~"5.."' in exprs["UpgestaoGatewayErrorRatio"]
    assert "upgestao_login_lockouts_total" in exprs["UpgestaoLoginLockoutSpike"]
    assert "< 2 * 86400" in exprs["UpgestaoPrivacyRequestDueSoon"]
    assert "< 12 * 3600" in exprs["UpgestaoIncidentDeadlineNear"]
    assert exprs["UpgestaoTargetDown"] == f'up{{job="{obs.JOB}"}} == 0'


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation but - and _ dropped, spaces to -."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower().replace("`", ""))
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_is_labelled_and_has_its_runbook_section():
    anchors = _anchors(OPERATIONS.read_text())
    for rule in obs.alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        url = annotations["runbook_url"]
        assert url == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section '### {name}' in docs/operations.md"
        for text in (annotations["summary"], annotations["description"]):
            printed = set(re.findall(r"\$labels\.(\w+)", text))
            assert printed <= BOUNDED_LABELS, f"{name} prints {printed - BOUNDED_LABELS}"
            assert printed <= _labels_kept(rule["expr"]), f"{name} prints a label its expression drops"


def _labels_kept(expr: str) -> set[str]:
    """The labels an alert's series keep: those of ``by (...)``, or every bounded one if not aggregated."""
    by = re.findall(r"\bby\s*\(([^)]*)\)", expr)
    if by:
        return {label.strip() for group in by for label in group.split(",") if label.strip()}
    return BOUNDED_LABELS if not re.search(r"\b(sum|max|min|avg|count)\s*\(", expr) else set()


def _series_in(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers followed by { or [ or standing alone, minus
    functions, keywords and label names)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_labels = re.sub(r"\[[^\]]*\]", "[]", re.sub(r"\{[^}]*\}", "{}", without_strings))
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    functions = set(re.findall(r"([a-zA-Z_]+)\s*\(", without_groupings))
    keywords = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                "group_right", "le", "inf", "Inf", "NaN", "e"}
    return words - functions - keywords


def test_the_rules_query_only_the_contract_s_series():
    for rule in obs.alerts():
        unknown = {name for name in _series_in(rule["expr"]) if not obs.is_known_series(name)}
        assert not unknown, f"{rule['alert']} queries {unknown}, not in the metrics contract"


def test_the_series_parser_sees_what_an_expression_selects():
    assert _series_in('sum by (le) (rate(upgestao_audit_ingest_lag_seconds_bucket{x="a b"}[5m])) > 10') == {
        "upgestao_audit_ingest_lag_seconds_bucket"}
    assert _series_in("time() - max(a_b) > 60 and on () (sum(increase(c_total[2m])) > 0)") == {"a_b", "c_total"}
    assert not obs.is_known_series("upgestao_user_logins_by_email")


# -- Kubernetes: the PrometheusRule is rules.yml ------------------------------------------------------------


def test_the_prometheusrule_carries_exactly_the_rules():
    manifest = yaml.safe_load(obs.PROMETHEUS_RULE.read_text())
    assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"]["groups"] == obs.rule_groups(), (
        "deploy/k8s/base/prometheusrule.yaml differs from deploy/observability/rules.yml: run "
        "`python scripts/observability.py prometheusrule`")
    assert obs.PROMETHEUS_RULE.read_text() == obs.prometheus_rule_text(), "regenerate it (same command)"
    assert obs.main(["prometheusrule", "--check"]) == 0


# -- the Grafana dashboard ----------------------------------------------------------------------------------


def _panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row's panels
    return found


def test_the_dashboard_parses_and_queries_only_the_contract_s_series():
    dashboard = json.loads(obs.DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = _panels(dashboard)
    exprs = [(panel.get("title", "?"), target["expr"]) for panel in panels for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "two panels of one id"
    used = set()
    for title, expr in exprs:
        series = _series_in(expr.replace("$__rate_interval", "5m").replace("$__range", "1h"))
        assert series, f"panel {title!r}: no series in {expr!r}"
        unknown = {name for name in series if not obs.is_known_series(name)}
        assert not unknown, f"panel {title!r} queries {unknown}, not in the metrics contract"
        used |= series
    # every series of the contract is on the dashboard (a histogram through one of its series)
    for name, kind in obs.CONTRACT.items():
        names = {name + s for s in obs.HISTOGRAM_SUFFIXES} if kind == "histogram" else {name}
        assert names & used, f"{name} is on no panel"


# -- the local Prometheus configuration ------------------------------------------------------------------


def test_the_generated_prometheus_config_is_valid(tmp_path):
    targets = tmp_path / obs.TARGETS_FILE
    targets.write_text(json.dumps(obs.file_sd_groups({"identity": "127.0.0.1:9101",
                                                        "identity-relay": "127.0.0.1:9102"})))
    for config in (obs.prometheus_config(targets_file=targets),
                   obs.prometheus_config(targets=obs.file_sd_groups({"gateway": "127.0.0.1:9103"}),
                                         scrape_interval="1s", evaluation_interval="1s")):
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        result = promtool("check", "config", str(path))
        assert result.returncode == 0, f"promtool check config:\n{result.stdout}{result.stderr}"
    assert obs.prometheus_config(targets=[], scrape_interval="1s")["scrape_configs"][0]["scrape_timeout"] == "800ms"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each panel's query (as a recording rule, Grafana's $__rate_interval as 5m)."""
    dashboard = json.loads(obs.DASHBOARD.read_text())
    exprs = [target["expr"].replace("$__rate_interval", "5m") for panel in _panels(dashboard)
             for target in panel.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"upgestao:dashboard_query_{i}", "expr": expr}
                                                        for i, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, f"promtool check rules (the dashboard's queries):\n{result.stdout}{result.stderr}"


def test_the_platform_lists_its_metrics_endpoints_for_prometheus(tmp_path):
    """``make up`` writes <data dir>/metrics-targets.json (file_sd) from its processes' addresses, which
    ``make observe`` scrapes; a wildcard address is scraped on loopback; stop() removes it."""
    platform_module = load_script("scripts/upgestao_platform.py", "upgestao_platform")
    platform = platform_module.Platform(data_dir=tmp_path, http_address="127.0.0.1:1")
    platform.metrics_addresses = {"identity": "127.0.0.1:9101", "identity-relay": "0.0.0.0:9102"}
    platform.write_metrics_targets()
    assert json.loads(platform.metrics_targets_path.read_text()) == obs.file_sd_groups(
        {"identity": "127.0.0.1:9101", "identity-relay": "127.0.0.1:9102"})
    assert platform.metrics_targets_path.name == obs.TARGETS_FILE
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(obs.prometheus_config(targets_file=platform.metrics_targets_path)))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    platform.stop()
    assert not platform.metrics_targets_path.exists()

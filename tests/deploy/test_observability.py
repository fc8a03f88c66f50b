"""The dashboard and the alert rules name only metrics the code exports (or the servers'
exporters export), with labels those metrics have; the Kubernetes PrometheusRules are the
rule file's groups; every alert's runbook link lands on a heading of deploy/README.md."""

import json
import re

import pytest
import yaml
from prometheus_client import REGISTRY

from pamong.modules import SUITE_ORDER, installed
from tests.deploy import k8s

pytestmark = pytest.mark.deploy

DEPLOY = k8s.REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pamong.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PUBLISHED = k8s.REPO / "pamong" / "contracts" / "published.json"

# metrics that come from outside the code, and where from (scraped as deploy/ configures it)
EXTERNAL = {
    "up": "Prometheus itself, one per scrape target",
    "rabbitmq_detailed_queue_messages_ready":
        "RabbitMQ's rabbitmq_prometheus plugin, /metrics/detailed?family=queue_coarse_metrics",
    "mongodb_up": "percona/mongodb_exporter --compatible-mode",
}
METRIC = re.compile(r"\b((?:pamong|rabbitmq|mongodb)_[a-z0-9_]+|up)\b(?=\s*(\{|\[|\)|$|\s|==|>))")
SELECTOR = re.compile(r"\b([a-z][a-z0-9_]*)\{([^}]*)\}")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def exported():
    """``{sample name: label names}`` of every metric the installed modules register."""
    installed()  # imports every services/<module>/service.py and what it registers
    names = {}
    for name, collector in list(REGISTRY._names_to_collectors.items()):
        labels = tuple(getattr(collector, "_labelnames", ()))
        names[name] = labels
    return names


def expressions():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(f"dashboard panel {p['title']!r}", t["expr"])
             for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load(ALERTS.read_text())
    exprs += [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    return exprs


def test_the_dashboard_and_the_alerts_name_only_metrics_that_exist():
    code = exported()
    problems = []
    for where, expr in expressions():
        for name in {m.group(1) for m in METRIC.finditer(expr)}:
            if name not in code and name not in EXTERNAL:
                problems.append(f"{where}: {name} is exported by nothing")
    assert not problems, "\n".join(problems)
    used = {m.group(1) for _, expr in expressions() for m in METRIC.finditer(expr)}
    # the families the issue names are all on the dashboard or in an alert
    for needed in ("pamong_events_published_total", "pamong_events_consumed_total",
                   "pamong_events_dead_lettered_total", "pamong_outbox_relay_lag_seconds",
                   "pamong_http_requests_total", "pamong_http_request_seconds_bucket",
                   "pamong_notify_messages_total", "rabbitmq_detailed_queue_messages_ready",
                   "mongodb_up"):
        assert needed in used, needed


def test_label_matchers_use_labels_and_values_the_code_has():
    code = exported()
    event_types = {key.split()[0] for key in json.loads(PUBLISHED.read_text())}
    problems = []
    for where, expr in expressions():
        for metric, body in SELECTOR.findall(expr):
            for label, op, value in MATCHER.findall(body):
                if metric in code and label not in code[metric]:
                    problems.append(f"{where}: {metric} has no label {label!r}")
                if op == "=" and label == "type" and value not in event_types:
                    problems.append(f"{where}: no event type {value!r} is published")
                if op == "=" and label in ("source", "service", "job") \
                        and value not in (*SUITE_ORDER, "rabbitmq", "mongodb"):
                    problems.append(f"{where}: {label}={value!r} names no module")
    assert not problems, "\n".join(problems)


def test_the_metric_check_catches_a_misspelt_name():
    code = exported()
    names = {m.group(1) for m in METRIC.finditer(
        'sum(rate(pamong_http_request_total{service="letters"}[5m])) / up')}
    assert names == {"pamong_http_request_total", "up"}
    assert "pamong_http_request_total" not in code and "pamong_http_requests_total" in code


def test_the_rabbitmq_per_queue_depths_are_scraped_where_the_alerts_need_them(rendered):
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    detailed = [j for j in prometheus["scrape_configs"]
                if j.get("metrics_path") == "/metrics/detailed"]
    assert detailed and detailed[0]["params"] == {"family": ["queue_coarse_metrics"]}
    for overlay in ("production", "province", "dev"):
        monitors = [o for o in rendered[overlay] if o["kind"] == "ServiceMonitor"
                    and any(e.get("path") == "/metrics/detailed" for e in o["spec"]["endpoints"])]
        assert monitors, overlay
    jobs = {j["job_name"] for j in prometheus["scrape_configs"]}
    assert set(SUITE_ORDER) | {"rabbitmq", "mongodb"} <= jobs
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_the_kubernetes_rules_are_the_rule_files_groups(rendered):
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    for overlay, objects in rendered.items():
        shipped = [g for o in objects if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"]]
        modules = set(k8s.adopted_modules(objects))
        expected = [g for g in groups if g["name"] == "pamong-platform"
                    or g["name"].removeprefix("pamong-") in modules]
        key = lambda g: g["name"]  # noqa: E731
        assert sorted(shipped, key=key) == sorted(expected, key=key), overlay


def slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_links_a_heading_of_the_runbook():
    runbook = (DEPLOY / "README.md").read_text()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", runbook, flags=re.M)}
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: deploy/README.md has no #{anchor}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "pamong-overview"
    titles = {p["title"] for p in dashboard["panels"]}
    for needed in ("DLQ depth", "Relay lag", "Requests / s by module", "Latency p95 by module",
                   "5xx ratio by module", "Check-ins today", "Permit SLA breaches today",
                   "Notifications by channel and state / 5 min"):
        assert needed in titles, needed
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"

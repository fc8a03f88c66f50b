"""deploy/k8s: every overlay renders, passes the schemas (strict, offline), and holds together;
every module's Deployment is safe to run; a broken overlay fails the same checks."""

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from pamong.modules import SUITE_ORDER
from tests.deploy import k8s

pytestmark = pytest.mark.deploy

OVERLAYS = k8s.overlays()
MODULE_KINDS = ("Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
                "PodDisruptionBudget", "NetworkPolicy", "Job", "Ingress", "ServiceMonitor",
                "PrometheusRule")


def test_the_overlays_named_in_the_runbook_exist():
    assert {"dev", "production", "opd-letters-only", "province"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", k8s.K8S_VERSIONS)
def test_every_object_passes_its_schema_strictly(rendered, overlay, version):
    problems = [p for obj in rendered[overlay] for p in k8s.schema_errors(obj, version)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves_and_every_module_has_what_it_needs(rendered, overlay):
    problems = k8s.reference_errors(rendered[overlay]) + k8s.dependency_errors(rendered[overlay])
    assert not problems, "\n".join(problems)


def test_every_custom_resource_kind_has_a_schema_kept_here(rendered):
    kinds = {(o["apiVersion"], o["kind"]) for objs in rendered.values() for o in objs
             if "." in o["apiVersion"].split("/")[0] and not k8s._builtin_group(o["apiVersion"])}
    assert kinds == {("monitoring.coreos.com/v1", "ServiceMonitor"),
                     ("monitoring.coreos.com/v1", "PrometheusRule"),
                     ("external-secrets.io/v1", "ExternalSecret"),
                     ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
                     ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity")}
    for api_version, kind in kinds:
        assert k8s.crd_schema_file({"apiVersion": api_version, "kind": kind}).exists()


def test_the_secret_templates_are_valid_secrets():
    templates = sorted((k8s.K8S / "base" / "core" / "secrets").glob("*.template.yaml"))
    assert len(templates) >= 5
    for path in templates:
        secret = yaml.safe_load(path.read_text())
        assert secret["kind"] == "Secret"
        assert not k8s.schema_errors(secret, k8s.K8S_VERSIONS[-1])


# ------------------------------------------------------------------------ the modules ---

def test_every_installed_module_has_a_component_and_every_overlay_adopts_known_ones():
    assert k8s.module_components() == sorted(SUITE_ORDER)
    services = Path(k8s.REPO / "services")
    installed = sorted(p.name for p in services.iterdir() if (p / "service.py").exists())
    assert set(installed) <= set(k8s.module_components())


@pytest.mark.parametrize("module", sorted(SUITE_ORDER))
def test_each_module_component_brings_its_whole_kit(module):
    objects = k8s.render(k8s.COMPONENTS.parent / "overlays" / "production")
    mine = [o for o in objects
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == module]
    kinds = {o["kind"] for o in mine}
    assert set(MODULE_KINDS) <= kinds, f"{module} lacks {set(MODULE_KINDS) - kinds}"
    [job] = [o for o in mine if o["kind"] == "Job"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["bus", "declare", "--service", module]


def module_deployments(objects):
    return k8s.adopted_modules(objects).values()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_resources_and_runs_unprivileged(rendered, overlay):
    problems = []
    for deployment in (o for o in rendered[overlay] if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        pod_security = spec.get("securityContext", {})
        for c in spec["containers"]:
            where = f"{k8s.ident(deployment)} container {c['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part, {})):
                    problems.append(f"{where}: {part} without cpu and memory")
            security = c.get("securityContext", {})
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{where}: may run as root")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root filesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities not dropped")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_module_probes_use_the_health_endpoints_and_their_own_port(rendered, overlay):
    for deployment in module_deployments(rendered[overlay]):
        [c] = deployment["spec"]["template"]["spec"]["containers"]
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        module = deployment["metadata"]["name"]
        port = 8001 + SUITE_ORDER.index(module)  # the README's ports
        assert c["args"] == ["serve", module, "--port", str(port)]
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        if overlay != "province":  # which patches these two by position (checked below)
            assert [e["name"] for e in c["env"]][:2] == ["AMQP_URI", "MONGO_URI"]
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}  # noqa: S108


def test_modules_stop_later_than_their_slowest_handler(rendered):
    for deployment in module_deployments(rendered["production"]):
        slowest = int(deployment["metadata"]["annotations"][k8s.SLOWEST])
        spec = deployment["spec"]["template"]["spec"]
        pre_stop = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
        assert spec["terminationGracePeriodSeconds"] >= slowest + pre_stop + 10, \
            deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_module_network_policies_open_only_the_http_port_and_the_servers(rendered, overlay):
    policies = {o["metadata"]["name"]: o for o in rendered[overlay]
                if o["kind"] == "NetworkPolicy"}
    for module in k8s.adopted_modules(rendered[overlay]):
        spec = policies[module]["spec"]
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": module}}
        assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == ["http"]
        sources = {next(iter(peer["namespaceSelector"]["matchLabels"].values()))
                   for rule in spec["ingress"] for peer in rule["from"]}
        assert sources == {"ingress-nginx", "monitoring"}
        ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
        outside = [rule for rule in spec["egress"]
                   if any("ipBlock" in peer for peer in rule.get("to", []))]
        if module == "notify":
            assert ports == {5672, 27017, 53, 443, 587, 465} and len(outside) == 1
        else:
            assert ports == {5672, 27017, 53} and not outside
    assert "default-deny" in policies


def test_notify_webhooks_have_a_public_ingress_path(rendered):
    ingresses = [o for o in rendered["production"] if o["kind"] == "Ingress"]
    paths = {(p["path"], p["backend"]["service"]["name"])
             for i in ingresses for r in i["spec"]["rules"] for p in r["http"]["paths"]}
    assert ("/api/notify/v1/webhooks/", "notify") in paths
    for module in SUITE_ORDER:
        assert (f"/api/{module}/", module) in paths
    assert not any("metrics" in path or "health" in path for path, _ in paths)


def test_an_opd_overlay_adopts_only_its_modules(rendered):
    assert set(k8s.adopted_modules(rendered["opd-letters-only"])) == \
        {"directory", "letters", "notify"}
    assert set(k8s.adopted_modules(rendered["production"])) == set(SUITE_ORDER)


def test_production_runs_quorum_queues_and_three_node_servers(rendered):
    for overlay in ("production", "opd-letters-only", "province"):
        [config] = [o for o in rendered[overlay]
                    if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "pamong-config"]
        assert config["data"]["QUEUE_TYPE"] == "quorum"
        assert config["data"]["JWT_JWKS_URL"].startswith("https://")
    sets = {o["metadata"]["name"]: o for o in rendered["production"] if o["kind"] == "StatefulSet"}
    assert sets["rabbitmq"]["spec"]["replicas"] == sets["mongodb"]["spec"]["replicas"] == 3
    [cluster] = [o for o in rendered["province"] if o["kind"] == "RabbitmqCluster"]
    assert cluster["spec"]["replicas"] == 3
    assert "default_queue_type = quorum" in cluster["spec"]["rabbitmq"]["additionalConfig"]
    dev = {o["metadata"]["name"]: o for o in rendered["dev"] if o["kind"] == "StatefulSet"}
    assert dev["rabbitmq"]["spec"]["replicas"] == dev["mongodb"]["spec"]["replicas"] == 1


def test_province_modules_connect_with_the_operators_credentials(rendered):
    for workload in (o for o in rendered["province"] if o["kind"] in ("Deployment", "Job")
                     and o["metadata"]["labels"].get("app.kubernetes.io/part-of") == "pamong"
                     and o["metadata"]["labels"].get("app.kubernetes.io/component")
                     in ("server", "bus-topology")):
        env = workload["spec"]["template"]["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env]
        assert names[:4] == ["AMQP_USERNAME", "AMQP_PASSWORD", "AMQP_URI", "MONGO_URI"]
        assert env[3]["valueFrom"]["secretKeyRef"]["name"] == "mongodb-admin-pamong"


# ---------------------------------------------------------------------------- images ---

PINNED = re.compile(r"^[^@:\s]+(:[\w.-]*\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def all_images(objects):
    for _, spec, _ in k8s.pod_specs(objects):
        for c in k8s.containers(spec):
            yield c["image"]
    for o in objects:
        if o["kind"] == "RabbitmqCluster":
            yield o["spec"]["image"]


def is_pinned(image):
    return bool(PINNED.match(image)) and (":" in image.split("/")[-1] or "@sha256:" in image)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned_to_a_version(rendered, overlay):
    loose = sorted({i for i in all_images(rendered[overlay]) if not is_pinned(i)})
    assert not loose, f"not pinned to a full version or digest: {loose}"


def test_the_pamong_image_carries_the_project_version(rendered):
    version = tomllib.loads((k8s.REPO / "pyproject.toml").read_text())["project"]["version"]
    for overlay, objects in rendered.items():
        ours = {i for i in all_images(objects) if i.split(":")[0].endswith("pamong")}
        assert ours and all(i.endswith(f":{version}") for i in ours), (overlay, ours)


def test_the_pin_check_refuses_floating_references():
    for image in ("rabbitmq:4-management", "mongo:7", "pamong:latest", "pamong", "mongo:7.0"):
        assert not is_pinned(image), image
    for image in ("rabbitmq:4.1.4-management", "mongo:7.0.14",
                  "registry.pemda.example/pamong/pamong:0.1.0", "mongo@sha256:" + "a" * 64):
        assert is_pinned(image), image


# ------------------------------------------------------ broken overlays fail the checks ---

def overlay_dir(tmp_path, kustomization, files=None):
    """A throw-away overlay that uses the real base and components."""
    root = tmp_path / "overlay"
    root.mkdir()
    rel = os.path.relpath(k8s.K8S, root)
    text = kustomization.replace("K8S", rel)
    (root / "kustomization.yaml").write_text(text)
    for name, content in (files or {}).items():
        (root / name).write_text(content)
    return root


SERVER_SECRETS = """
  - name: rabbitmq-credentials
    literals: [RABBITMQ_DEFAULT_USER=a, RABBITMQ_DEFAULT_PASS=b, RABBITMQ_ERLANG_COOKIE=c]
  - name: mongodb-credentials
    literals: [MONGO_INITDB_ROOT_USERNAME=a, MONGO_INITDB_ROOT_PASSWORD=b, PAMONG_PASSWORD=c,
               keyfile=d]
"""
SECRETS = """
secretGenerator:
  - {name: pamong-connections, literals: [AMQP_URI=amqp://x, MONGO_URI=mongodb://x]}
  - {name: letters-keys, literals: [README=x]}""" + SERVER_SECRETS


def test_a_whole_throwaway_overlay_passes(tmp_path):
    root = overlay_dir(tmp_path, """
namespace: pamong
resources: [K8S/base]
components: [K8S/components/directory, K8S/components/letters]
""" + SECRETS)
    assert k8s.check_overlay(root, versions=k8s.K8S_VERSIONS[-1:]) == []


def test_an_overlay_adopting_a_module_without_the_directory_fails(tmp_path):
    root = overlay_dir(tmp_path, """
namespace: pamong
resources: [K8S/base]
components: [K8S/components/letters]
""" + SECRETS)
    problems = k8s.check_overlay(root, versions=k8s.K8S_VERSIONS[-1:])
    assert problems == ["module letters needs module directory, which this overlay does not "
                        "adopt (add ../../components/directory to its components)"]


def test_an_overlay_without_a_secret_its_modules_read_fails(tmp_path):
    root = overlay_dir(tmp_path, """
namespace: pamong
resources: [K8S/base]
components: [K8S/components/directory]
secretGenerator:""" + SERVER_SECRETS)
    problems = k8s.check_overlay(root, versions=k8s.K8S_VERSIONS[-1:])
    assert problems == [
        "Deployment/directory refers to Secret 'pamong-connections', which this overlay does "
        "not provide",
        "Job/directory-bus-declare refers to Secret 'pamong-connections', which this overlay "
        "does not provide"]


def test_an_overlay_with_a_broken_reference_fails(tmp_path):
    root = overlay_dir(tmp_path, """
namespace: pamong
resources: [K8S/base]
components: [K8S/components/directory]
patches:
  - target: {kind: Ingress, name: directory}
    patch: |
      - {op: replace, path: /spec/rules/0/http/paths/0/backend/service/name, value: directry}
  - target: {kind: Deployment, name: directory}
    patch: |
      - op: replace
        path: /spec/template/spec/containers/0/envFrom/1/configMapRef/name
        value: directory-settings
""" + SECRETS)
    problems = k8s.check_overlay(root, versions=k8s.K8S_VERSIONS[-1:])
    assert problems == [
        "Deployment/directory refers to ConfigMap 'directory-settings', which this overlay "
        "does not provide",
        "Ingress/directory routes /api/directory/ to Service 'directry', which does not exist"]


def test_an_overlay_naming_a_missing_component_does_not_render(tmp_path):
    root = overlay_dir(tmp_path, """
resources: [K8S/base]
components: [K8S/components/directory, K8S/components/leters]
""")
    with pytest.raises(k8s.RenderError, match="leters"):
        k8s.check_overlay(root)


def test_an_unknown_field_fails_the_schema_check(tmp_path):
    root = overlay_dir(tmp_path, """
namespace: pamong
resources: [K8S/base]
components: [K8S/components/directory]
patches:
  - target: {kind: Deployment, name: directory}
    patch: |
      - {op: add, path: /spec/template/spec/containers/0/readinessProbes, value: {}}
  - target: {kind: ServiceMonitor, name: directory}
    patch: |
      - {op: add, path: /spec/endpoints/0/intervall, value: 30s}
""" + SECRETS)
    problems = k8s.check_overlay(root, versions=k8s.K8S_VERSIONS[-1:])
    assert any("readinessProbes" in p and "Deployment/directory" in p for p in problems)
    assert any("intervall" in p and "ServiceMonitor/directory" in p for p in problems)

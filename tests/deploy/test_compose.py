"""deploy/compose.yaml: parses, runs the image and the commands the Kubernetes manifests run,
starts in order (health checks and depends_on conditions), and keeps the servers that
deploy/local/stack.sh starts from it."""

import pytest
import yaml

from pamong.modules import SUITE_ORDER
from tests.deploy import k8s
from tests.deploy.test_k8s import is_pinned

pytestmark = pytest.mark.deploy

COMPOSE = k8s.REPO / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved as Compose does


def component_image(module):
    deployment = yaml.safe_load((k8s.COMPONENTS / module / "deployment.yaml").read_text())
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_every_image_is_pinned(compose):
    images = {name: s["image"] for name, s in compose["services"].items()}
    assert all(is_pinned(i) for i in images.values()), images
    assert images["rabbitmq"].startswith("rabbitmq:4.") and "management" in images["rabbitmq"]
    assert images["mongo"].startswith("mongo:7.")


def test_the_modules_run_the_kubernetes_image_and_commands(compose, rendered):
    deployments = k8s.adopted_modules(rendered["dev"])
    for module in SUITE_ORDER:
        service = compose["services"][module]
        assert service["image"] == component_image(module)
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        container = deployments[module]["spec"]["template"]["spec"]["containers"][0]
        assert service["command"] == container["args"]
        port = int(container["args"][-1])
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert service["environment"]["PAMONG_PORT"] == str(port)
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]  # noqa: S108
        assert service["user"] == "10001:10001" and service["cap_drop"] == ["ALL"]
        assert service["healthcheck"]["test"][-1].count("/health/ready") == 1
        assert service["environment"]["QUEUE_TYPE"] == "quorum"


def test_the_topology_is_declared_as_the_jobs_declare_it(compose, rendered):
    topology = compose["services"]["topology"]
    assert topology["command"] == ["bus", "declare"]
    assert topology["image"] == component_image("directory")
    jobs = [o for o in rendered["dev"] if o["kind"] == "Job"
            and o["metadata"]["labels"].get("app.kubernetes.io/component") == "bus-topology"]
    for job in jobs:
        assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["bus", "declare"]


def test_services_start_in_order(compose):
    services = compose["services"]
    for name in ("rabbitmq", "mongo", "prometheus", *SUITE_ORDER):
        assert "healthcheck" in services[name], name
    assert services["topology"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    for module in SUITE_ORDER:
        deps = services[module]["depends_on"]
        assert deps["rabbitmq"] == deps["mongo"] == {"condition": "service_healthy"}
        assert deps["topology"] == {"condition": "service_completed_successfully"}
        if module != "directory":
            assert deps["directory"] == {"condition": "service_healthy"}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_mongo_is_a_replica_set_initiated_by_its_health_check(compose):
    mongo = compose["services"]["mongo"]
    assert mongo["command"][:2] == ["--replSet", "rs0"]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
    assert compose["x-pamong"]["environment"]["MONGO_URI"].endswith("?replicaSet=rs0")


def test_the_mounted_files_exist_and_grafana_gets_the_dashboard(compose):
    for name in ("rabbitmq", "prometheus", "grafana"):
        for volume in compose["services"][name].get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).exists(), volume
    grafana = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./grafana/dashboards:" in grafana and "./grafana/provisioning/dashboards:" in grafana
    assert (COMPOSE.parent / "grafana" / "dashboards" / "pamong.json").exists()


def test_stack_sh_still_finds_its_servers(compose):
    """deploy/local/stack.sh runs `up -d rabbitmq mongo` with these port variables."""
    stack = (k8s.REPO / "deploy" / "local" / "stack.sh").read_text()
    assert "compose rm -s -f rabbitmq" in stack and "compose rm -s -f mongo" in stack
    assert "${PAMONG_AMQP_PORT:-5672}" in compose["services"]["rabbitmq"]["ports"][0]
    assert "${PAMONG_MONGO_PORT:-27017}" in compose["services"]["mongo"]["ports"][0]
    assert not compose["services"]["rabbitmq"].get("depends_on")
    assert not compose["services"]["mongo"].get("depends_on")

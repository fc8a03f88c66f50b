"""Offline checks of the Kubernetes manifests (`make k8s-validate`): render an overlay with
kustomize, validate every object against the Kubernetes JSON schemas (kubernetes-validate,
strict) or, for a custom resource, against the schema kept in deploy/k8s/schemas/, and check
what a schema cannot: references between objects, and the modules an adopted module needs.

kustomize comes from `kubectl kustomize` when kubectl is on PATH, else from a kustomize built
with Go into .cache/bin (`go install`, once). No cluster and no network are used otherwise.
"""

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = K8S / "overlays"
COMPONENTS = K8S / "components"
SCHEMAS = K8S / "schemas"
CACHE_BIN = REPO / ".cache" / "bin"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"

# the oldest Kubernetes the manifests support (matchLabelKeys in pod affinity: 1.31 beta) and
# the newest whose schemas kubernetes-validate bundles
K8S_VERSIONS = ("1.31.0", "1.37.0")

# the annotation a module's Deployment names the modules it cannot work without by
REQUIRES = "pamong.example/requires"
SLOWEST = "pamong.example/slowest-handler-seconds"

# Secrets an operator creates itself (overlays/province): name -> made by
OPERATOR_SECRETS = {
    "rabbitmq-default-user": ("RabbitmqCluster", "rabbitmq"),
    "mongodb-admin-pamong": ("MongoDBCommunity", "mongodb"),
}

WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


class RenderError(Exception):
    pass


def overlays():
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


def module_components():
    """Component folders of modules (not the profiles)."""
    return sorted(p.name for p in COMPONENTS.iterdir()
                  if (p / "kustomization.yaml").exists() and not p.name.startswith("profile-"))


@functools.cache
def kustomize_command():
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    built = CACHE_BIN / "kustomize"
    if not built.exists():
        go = shutil.which("go")
        if not go:
            raise RenderError("neither kubectl nor Go is on PATH: install kubectl, or Go to "
                              f"build kustomize ({KUSTOMIZE_MODULE}) into .cache/bin")
        CACHE_BIN.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([go, "install", KUSTOMIZE_MODULE],  # noqa: S603
                              env={**os.environ, "GOBIN": str(CACHE_BIN)},
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RenderError(f"go install {KUSTOMIZE_MODULE} failed: {done.stderr[-2000:]}")
    return [str(built), "build"]


def render(path):
    """The objects an overlay (or any kustomization directory) renders to."""
    return [dict(d) for d in _render(str(Path(path).resolve()))]


@functools.cache
def _render(path):
    done = subprocess.run([*kustomize_command(), path], capture_output=True,  # noqa: S603
                          text=True, timeout=120)
    if done.returncode:
        raise RenderError(f"kustomize {path}: {done.stderr.strip()[-3000:]}")
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def ident(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


# ------------------------------------------------------------------------------- schemas ---

def crd_schema_file(obj):
    group, _, version = obj["apiVersion"].rpartition("/")
    return SCHEMAS / f"{group}_{version}_{obj['kind']}.yaml"


@functools.cache
def _crd_validator(path):
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    def load(name):
        return yaml.safe_load((SCHEMAS / name).read_text())

    registry = Registry().with_resource(
        "_common.yaml", Resource.from_contents(load("_common.yaml"),
                                               default_specification=DRAFT202012))
    schema = load(Path(path).name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(obj, version):
    """Problems of one object against its schema for Kubernetes ``version`` ([] when none)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    if "." in obj["apiVersion"].split("/")[0] and not _builtin_group(obj["apiVersion"]):
        path = crd_schema_file(obj)
        if not path.exists():
            return [f"{ident(obj)}: custom resource {obj['apiVersion']} has no schema in "
                    f"{SCHEMAS.relative_to(REPO)} (add {path.name})"]
        return [f"{ident(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in _crd_validator(str(path)).iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except SchemaNotFoundError as exc:
        return [f"{ident(obj)}: no Kubernetes {version} schema for {obj['apiVersion']} "
                f"{obj['kind']} ({exc.message})"]
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(map(str, exc.path))
        return [f"{ident(obj)} (Kubernetes {version}): {where}: {exc.message}"]
    return []


BUILTIN_GROUPS = ("apps", "batch", "policy", "autoscaling", "networking.k8s.io",
                  "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io",
                  "coordination.k8s.io", "discovery.k8s.io")


def _builtin_group(api_version):
    return api_version.split("/")[0] in BUILTIN_GROUPS


# ---------------------------------------------------------------------------- references ---

def pod_specs(objects):
    """(workload, pod spec, pod labels) of every workload."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            template = obj["spec"]["template"]
            yield obj, template["spec"], template.get("metadata", {}).get("labels", {})


def containers(pod_spec):
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def _selects(selector, labels):
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain selector map."""
    selector = selector or {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        if selector.get("matchExpressions"):
            return True  # not used by these manifests: accepted, not checked
        selector = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def provided_secrets(objects):
    names = {o["metadata"]["name"]: ident(o) for o in objects if o["kind"] == "Secret"}
    for o in objects:
        if o["kind"] == "ExternalSecret":
            target = o["spec"].get("target", {}).get("name") or o["metadata"]["name"]
            names[target] = ident(o)
        if o["kind"] == "SealedSecret":
            names[o["metadata"]["name"]] = ident(o)
    for secret, (kind, name) in OPERATOR_SECRETS.items():
        if any(o["kind"] == kind and o["metadata"]["name"] == name for o in objects):
            names[secret] = f"{kind}/{name} (made by its operator)"
    return names


def reference_errors(objects):
    """Every name an object refers to exists in the same rendering."""
    errors = []
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    configmaps = set(by_kind.get("ConfigMap", {}))
    secrets = provided_secrets(objects)

    def need(kind, name, have, where, optional=False):
        if not optional and name not in have:
            errors.append(f"{where} refers to {kind} {name!r}, which this overlay does not "
                          "provide")

    for workload, spec, labels in pod_specs(objects):
        where = ident(workload)
        for c in containers(spec):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]
                    need("ConfigMap", ref["name"], configmaps, where, ref.get("optional"))
                if "secretRef" in source:
                    ref = source["secretRef"]
                    need("Secret", ref["name"], secrets, where, ref.get("optional"))
            for env in c.get("env", []):
                value_from = env.get("valueFrom", {})
                if "configMapKeyRef" in value_from:
                    ref = value_from["configMapKeyRef"]
                    need("ConfigMap", ref["name"], configmaps, where, ref.get("optional"))
                if "secretKeyRef" in value_from:
                    ref = value_from["secretKeyRef"]
                    need("Secret", ref["name"], secrets, where, ref.get("optional"))
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"] for v in spec.get("volumes", [])}
            claims = {t["metadata"]["name"]
                      for t in workload["spec"].get("volumeClaimTemplates", [])}
            for missing in sorted(mounts - volumes - claims):
                errors.append(f"{where}: container {c['name']} mounts volume {missing!r}, "
                              "which the pod does not have")
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                need("ConfigMap", volume["configMap"]["name"], configmaps, where,
                     volume["configMap"].get("optional"))
            if "secret" in volume:
                need("Secret", volume["secret"]["secretName"], secrets, where,
                     volume["secret"].get("optional"))
        if workload["kind"] in ("Deployment", "StatefulSet"):
            if not _selects(workload["spec"]["selector"], labels):
                errors.append(f"{where}: its selector does not select its own pods")
        if workload["kind"] == "StatefulSet":
            need("Service", workload["spec"]["serviceName"], by_kind.get("Service", {}), where)

    pods = [labels for _, _, labels in pod_specs(objects)]
    for service in by_kind.get("Service", {}).values():
        selector = service["spec"].get("selector")
        if selector and not any(_selects(selector, labels) for labels in pods):
            errors.append(f"{ident(service)} selects no pod of this overlay")
    for ingress in by_kind.get("Ingress", {}).values():
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                service = by_kind.get("Service", {}).get(backend["name"])
                if service is None:
                    errors.append(f"{ident(ingress)} routes {path['path']} to Service "
                                  f"{backend['name']!r}, which does not exist")
                    continue
                port = backend["port"]
                names = {p.get("name") for p in service["spec"]["ports"]}
                numbers = {p["port"] for p in service["spec"]["ports"]}
                if port.get("name") not in names and port.get("number") not in numbers:
                    errors.append(f"{ident(ingress)} routes to port {port} that "
                                  f"{ident(service)} does not have")
    targets = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) not in targets:
            errors.append(f"{ident(hpa)} scales {ref['kind']}/{ref['name']}, which does not "
                          "exist")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in by_kind.get(kind, {}).values():
            selector = obj["spec"].get("selector") if kind == "PodDisruptionBudget" \
                else obj["spec"].get("podSelector")
            if selector and (selector.get("matchLabels") or selector.get("matchExpressions")) \
                    and not any(_selects(selector, labels) for labels in pods) \
                    and not _operator_managed(selector, objects):
                errors.append(f"{ident(obj)} selects no pod of this overlay")
    for monitor in by_kind.get("ServiceMonitor", {}).values():
        selected = [s for s in by_kind.get("Service", {}).values()
                    if _selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        if not selected and not _operator_managed(monitor["spec"]["selector"], objects):
            errors.append(f"{ident(monitor)} selects no Service of this overlay")
        for endpoint in monitor["spec"]["endpoints"]:
            if selected and not any(endpoint.get("port") in {p.get("name") for p in
                                                            s["spec"]["ports"]}
                                    for s in selected):
                errors.append(f"{ident(monitor)} scrapes port {endpoint.get('port')!r}, "
                              "which none of its Services has")
    return list(dict.fromkeys(errors))  # each problem once


# pods an operator makes from a custom resource, by the labels it gives them
OPERATOR_POD_LABELS = {
    "RabbitmqCluster": lambda name: [{"app.kubernetes.io/name": name,
                                      "app.kubernetes.io/component": "rabbitmq"}],
    "MongoDBCommunity": lambda name: [{"app": f"{name}-svc"}],
}


def _operator_managed(selector, objects):
    for obj in objects:
        make = OPERATOR_POD_LABELS.get(obj["kind"])
        if make and any(_selects(selector, labels) for labels in make(obj["metadata"]["name"])):
            return True
    return False


# --------------------------------------------------------------------------- dependencies ---

def adopted_modules(objects):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"
            and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "server"
            and o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "pamong"}


def dependency_errors(objects):
    """An adopted module whose required modules are not adopted too."""
    modules = adopted_modules(objects)
    errors = []
    for name, deployment in sorted(modules.items()):
        wanted = deployment["metadata"].get("annotations", {}).get(REQUIRES, "")
        for needed in filter(None, re.split(r"[,\s]+", wanted)):
            if needed not in modules:
                errors.append(f"module {name} needs module {needed}, which this overlay does "
                              f"not adopt (add ../../components/{needed} to its components)")
    return errors


def check_overlay(path, versions=K8S_VERSIONS):
    """Every problem of one overlay: render, schemas, references, dependencies."""
    objects = render(path)
    problems = []
    for version in versions:
        for obj in objects:
            problems += schema_errors(obj, version)
    return problems + reference_errors(objects) + dependency_errors(objects)

"""deploy/README.md: the commands and paths the runbook gives exist as written."""

import re
import shlex

import pytest

from pamong.cli.main import build_parser
from pamong.modules import SUITE_ORDER
from tests.deploy import k8s

pytestmark = pytest.mark.deploy

RUNBOOK = (k8s.REPO / "deploy" / "README.md").read_text()
# paths the runbook tells the operator to create (their own overlay), not files of ours
YOURS = {"deploy/k8s/overlays/pemda-banyuwangi"}


def test_every_path_named_exists():
    paths = {p.rstrip(".,:;)`'") for p in re.findall(r"\bdeploy/[\w./*<>-]+", RUNBOOK)}
    # `kubectl exec deploy/letters` is kubectl's short name of a Deployment, not a path
    paths = {p for p in paths if p.split("/")[1] not in SUITE_ORDER}
    missing = []
    for path in sorted(paths - YOURS):
        if "<" in path or "*" in path:
            if not list(k8s.REPO.glob(re.sub(r"<[^>]+>", "*", path))):
                missing.append(path)
        elif not (k8s.REPO / path).exists():
            missing.append(path)
    assert not missing, missing


def test_every_kustomize_and_make_command_names_what_exists():
    for path in re.findall(r"(?:apply(?: --dry-run=server)? -k|kustomize) (deploy/\S+)", RUNBOOK):
        path = path.rstrip("`,.")
        if path not in YOURS:
            assert (k8s.REPO / path / "kustomization.yaml").exists(), path
    makefile = (k8s.REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*)(?: [a-z][\w-]*)*:", makefile, flags=re.M))
    for target in set(re.findall(r"`make ([a-z][\w-]*)", RUNBOOK)):
        assert target in targets, f"make {target}"


def test_every_pamong_command_parses():
    parser = build_parser()
    # `pamong <command>` in code (not `kubectl run`, not prose like "pamong serve")
    commands = re.findall(r"(?:-- |`|^)pamong ((?:bus|dlq|directory|token|events|contracts)"
                          r"\b[^`\n|>)#]*)", RUNBOOK, flags=re.M)
    assert len(commands) >= 8
    for command in commands:
        command = command.replace("...", "x").replace("<module", "letters")
        argv = [a for a in shlex.split(command) if not a.startswith("(")]
        argv = argv[:argv.index("or")] if "or" in argv else argv
        parser.parse_args(argv)  # SystemExit (a failure here) when it does not parse


def test_the_objects_the_runbook_names_are_rendered(rendered):
    names = {(o["kind"].lower(), o["metadata"]["name"]) for o in rendered["production"]}
    for kind, name in re.findall(r"\b(job|deployment|service)/([a-z][\w-]+)", RUNBOOK):
        if name.startswith("<"):
            continue
        assert (kind, name) in names, f"{kind}/{name}"
    templates = {p.name.split(".")[0]
                 for p in (k8s.K8S / "base" / "core" / "secrets").glob("*.template.yaml")}
    table = RUNBOOK.split("| Secret | read by | keys |", 1)[1].split("\n\n", 1)[0]
    secrets = re.findall(r"^\s*\| `([a-z-]+)` \| ", table, flags=re.M)
    assert len(secrets) == 7
    for secret in secrets:
        assert secret in templates or secret in ("letters-keys-password", "pamong-auth"), secret

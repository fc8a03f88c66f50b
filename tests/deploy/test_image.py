"""deploy/docker/Dockerfile: one pinned, multi-stage, non-root image whose installed package
carries every file the services read at run time; the module picked by the command or
PAMONG_MODULE."""

import fnmatch
import re
import tomllib

import pytest

from pamong.cli.main import main as pamong_cli
from tests.deploy import k8s

pytestmark = pytest.mark.deploy

DOCKERFILE = k8s.REPO / "deploy" / "docker" / "Dockerfile"
IGNORE = k8s.REPO / "deploy" / "docker" / "Dockerfile.dockerignore"


def stages():
    text = DOCKERFILE.read_text()
    return re.split(r"^FROM ", text, flags=re.M)[1:], text


def test_the_base_image_is_pinned_and_the_final_stage_runs_as_a_user():
    parts, text = stages()
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base)
    # the front-end assets (npm), the build, then a final stage that copies the virtualenv only
    assert len(parts) == 3
    [node] = re.findall(r"^ARG NODE_IMAGE=(\S+)$", text, flags=re.M)
    assert re.fullmatch(r"node:\d+\.\d+\.\d+-\w+-slim", node)
    assert "npm ci" in parts[0] and "npm" not in parts[-1]
    final = parts[-1]
    assert re.search(r"^USER 10001:10001$", final, flags=re.M)
    assert "COPY --from=build /opt/pamong /opt/pamong" in final
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in final, tool
    assert 'ENTRYPOINT ["pamong"]' in final and 'CMD ["serve"]' in final


def test_the_build_context_holds_only_what_the_image_needs():
    lines = [line.strip() for line in IGNORE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!constraints.txt", "!pamong/", "!services/"} <= set(lines)
    assert "!tests/" not in lines and "!deploy/" not in lines


def test_every_runtime_data_file_is_installed_as_package_data():
    """A regular install (the image's) carries only Python files and these patterns."""
    patterns = tomllib.loads((k8s.REPO / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["*"]
    missing = []
    for root in ("pamong", "services"):
        for path in (k8s.REPO / root).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or path.name == "README.md" \
                    or "__pycache__" in path.parts:
                continue
            package = next(p for p in path.parents if (p / "__init__.py").exists())
            relative = str(path.relative_to(package))
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                missing.append(str(path.relative_to(k8s.REPO)))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_serve_takes_the_module_from_the_environment(monkeypatch):
    monkeypatch.delenv("PAMONG_MODULE", raising=False)
    with pytest.raises(SystemExit, match="name a module .* or set PAMONG_MODULE"):
        pamong_cli(["serve"])
    monkeypatch.setenv("PAMONG_MODULE", "no-such-module")
    with pytest.raises(SystemExit, match="unknown module 'no-such-module'"):
        pamong_cli(["serve"])

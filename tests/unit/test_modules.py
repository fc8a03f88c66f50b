"""Loading one module does not import the others: a broken notify rules file (checked when
``services.notify.service`` is imported) must not stop ``pamong serve permits``."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def run(code, **env):
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_loading_one_module_imports_only_that_module(tmp_path):
    broken = tmp_path / "rules.yaml"
    broken.write_text("rules:\n  - id: x\n    event: permit.nothing_like_it\n")
    code = ("import sys; from pamong.modules import load_service; "
            "print(load_service('permits').name, 'services.notify.service' in sys.modules)")
    result = run(code, NOTIFY_RULES_FILE=str(broken))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["permits", "False"]
    # the broken file still stops notify itself, with its reason
    result = run("from pamong.modules import load_service; load_service('notify')",
                 NOTIFY_RULES_FILE=str(broken))
    assert result.returncode != 0
    assert "rule x" in result.stderr

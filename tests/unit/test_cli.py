import subprocess
import sys

import pytest

from pamong.auth import verify_token
from pamong.config import load_config

pytestmark = pytest.mark.unit

SECRET = "cli-test-secret-with-enough-length-for-hs256"


def pamong(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pamong.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_help_lists_every_command():
    result = pamong("--help")
    assert result.returncode == 0
    for command in ("token", "bus", "dlq", "events", "contracts", "docs", "serve", "run"):
        assert command in result.stdout
    assert "declare" in pamong("bus", "--help").stdout
    assert "list,show,replay,purge" in pamong("dlq", "--help").stdout
    assert "tail" in pamong("events", "--help").stdout


def test_token_mints_a_verifiable_development_token(monkeypatch):
    import os

    env = dict(os.environ, JWT_SECRET=SECRET)
    result = pamong("token", "--sub", "198609262015051001", "--role", "pegawai",
                    "--role", "verifikator", "--opd", "3510.01", env=env)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("JWT_SECRET", SECRET)
    claims = verify_token(result.stdout.strip(), load_config())
    assert claims["sub"] == "198609262015051001"
    assert claims["roles"] == ["pegawai", "verifikator"]
    assert claims["opd"] == "3510.01"


def test_environment_values_are_typed_like_yaml(monkeypatch):
    monkeypatch.setenv("RETRY_DELAYS", "[1, 2.5]")
    monkeypatch.setenv("INBOX_LEASE_SECONDS", "90")
    monkeypatch.setenv("JWT_AUDIENCE", "on")
    config = load_config()
    assert config["RETRY_DELAYS"] == [1, 2.5]
    assert config["INBOX_LEASE_SECONDS"] == 90
    assert config["JWT_AUDIENCE"] == "on"

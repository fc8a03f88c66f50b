"""The `pamong` command imports `module:Class` specs from the project by itself: no
PYTHONPATH, from any directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pamong.testing import broker

pytestmark = pytest.mark.integration

PAMONG = Path(sys.executable).with_name("pamong")  # the console script, as an operator runs it


def test_bus_declare_finds_a_test_service_without_pythonpath(vhost):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["AMQP_URI"] = broker.amqp_uri_for(vhost)

    result = subprocess.run(
        [str(PAMONG), "bus", "declare", "--service", "tests.launcher_service:HelloService"],
        cwd="/", env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "hello.events declared" in result.stdout


def test_an_unknown_spec_says_where_it_looked():
    result = subprocess.run(
        [str(PAMONG), "bus", "declare", "--service", "tests.no_such_module:X"],
        cwd="/", capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})

    assert result.returncode != 0
    assert "cannot import 'tests.no_such_module'" in result.stderr
    assert str(Path(__file__).resolve().parents[2]) in result.stderr

"""`pamong run` gives each of the suite's modules the same port whatever else is adopted."""

import pytest

from pamong.modules import module_ports

pytestmark = pytest.mark.unit


def test_suite_modules_keep_their_ports_and_start_directory_first():
    ports = module_ports(["notify", "attendance", "directory"], 8001)
    assert list(ports) == ["directory", "attendance", "notify"]
    assert ports == {"directory": 8001, "attendance": 8002, "notify": 8005}
    assert module_ports(["letters"], 9001) == {"letters": 9003}


def test_other_modules_come_after_the_suite_in_name_order():
    assert module_ports(["zeta", "alpha", "directory"], 8001) == {
        "directory": 8001, "alpha": 8006, "zeta": 8007}


def test_without_suite_modules_others_start_at_the_first_port():
    assert module_ports(["hello", "alpha"], 9001) == {"alpha": 9001, "hello": 9002}

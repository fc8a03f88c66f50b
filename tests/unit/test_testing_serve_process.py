"""pamong.testing.serve_process: a module that exits while starting fails the caller with the
end of its log, so a crash at start-up (a CI run's only trace of it) says why."""

import pytest

from pamong.config import load_config
from pamong.testing import free_port, serve_process


def test_a_module_that_exits_while_starting_is_reported_with_its_log(tmp_path):
    config = load_config(overrides={"JWT_SECRET": "x" * 40})
    with open(tmp_path / "module.log", "ab") as log, \
            pytest.raises(RuntimeError) as failed:
        serve_process(config, "no-such-module", free_port(), log=log, ready_timeout=30)
    message = str(failed.value)
    assert message.startswith("no-such-module exited with 1 while starting:\n")
    assert "unknown module 'no-such-module'" in message

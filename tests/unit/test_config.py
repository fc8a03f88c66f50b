import re
from pathlib import Path

import pytest
import yaml

from pamong.config import DEFAULTS, ConfigError, interpolate, load_config, service_section

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("PAMONG_T_HOST", "PAMONG_T_PORT", "PAMONG_T_MISSING", "PAMONG_CONFIG",
                 "AMQP_URI", "MONGO_URI", "MONGO_DB_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_variable_is_substituted(clean_env):
    clean_env.setenv("PAMONG_T_HOST", "db.local")
    assert interpolate("mongodb://${PAMONG_T_HOST}:27017/") == "mongodb://db.local:27017/"


def test_default_used_when_unset():
    assert interpolate("http://${PAMONG_T_HOST:localhost}/x") == "http://localhost/x"


def test_environment_wins_over_default(clean_env):
    clean_env.setenv("PAMONG_T_HOST", "db.local")
    assert interpolate("${PAMONG_T_HOST:localhost}") == "db.local"


def test_whole_string_reference_is_typed(clean_env):
    assert interpolate("${PAMONG_T_PORT:8000}") == 8000
    assert interpolate("${PAMONG_T_PORT:0.5}") == 0.5
    assert interpolate("${PAMONG_T_PORT:true}") is True
    clean_env.setenv("PAMONG_T_PORT", "9001")
    assert interpolate("${PAMONG_T_PORT}") == 9001


def test_embedded_reference_stays_text():
    assert interpolate("port-${PAMONG_T_PORT:8000}") == "port-8000"


def test_empty_default_is_empty_string():
    assert interpolate("${PAMONG_T_HOST:}") == ""


def test_missing_variable_without_default_is_an_error():
    with pytest.raises(ConfigError, match="PAMONG_T_MISSING"):
        interpolate("x ${PAMONG_T_MISSING} y")
    with pytest.raises(ConfigError, match="PAMONG_T_MISSING"):
        interpolate({"a": [{"b": "${PAMONG_T_MISSING}"}]})


def test_nested_dicts_and_lists(clean_env):
    clean_env.setenv("PAMONG_T_HOST", "h")
    value = {"a": {"b": ["${PAMONG_T_HOST}", "${PAMONG_T_PORT:1}", 3, None]}, "c": True}
    assert interpolate(value) == {"a": {"b": ["h", 1, 3, None]}, "c": True}


def test_load_config_from_yaml_file(tmp_path, clean_env):
    clean_env.setenv("PAMONG_T_HOST", "rabbit.local")
    path = tmp_path / "pamong.yaml"
    path.write_text(
        "AMQP_URI: amqp://guest:guest@${PAMONG_T_HOST}:5672/\n"
        "RETRY_DELAYS: [1, 2]\n"
        "WEB_PORT: ${PAMONG_T_PORT:8000}\n"
        "services:\n"
        "  permits:\n"
        "    sla_days: ${PAMONG_T_MISSING:14}\n"
    )
    config = load_config(path)
    assert config["AMQP_URI"] == "amqp://guest:guest@rabbit.local:5672/"
    assert config["RETRY_DELAYS"] == [1, 2]
    assert config["WEB_PORT"] == 8000
    assert config["RETRY_JITTER"] == DEFAULTS["RETRY_JITTER"]  # defaults kept
    assert service_section(config, "permits") == {"sla_days": 14}
    assert service_section(config, "letters") == {}


def test_path_from_environment(tmp_path, clean_env):
    path = tmp_path / "c.yaml"
    path.write_text("FOO: bar\n")
    clean_env.setenv("PAMONG_CONFIG", str(path))
    assert load_config()["FOO"] == "bar"


def test_overrides_win(tmp_path, clean_env):
    clean_env.setenv("MONGO_URI", "mongodb://env/")
    path = tmp_path / "c.yaml"
    path.write_text("MONGO_URI: mongodb://file/\nRETRY_JITTER: 0.5\n")
    config = load_config(path, overrides={"MONGO_URI": "mongodb://override/"})
    assert config["MONGO_URI"] == "mongodb://override/"
    assert config["RETRY_JITTER"] == 0.5


def test_environment_uris_over_defaults(clean_env):
    clean_env.setenv("AMQP_URI", "amqp://env/")
    assert load_config()["AMQP_URI"] == "amqp://env/"


def test_defaults_are_not_mutated():
    config = load_config(overrides={"RETRY_JITTER": 0.9})
    assert config["RETRY_JITTER"] == 0.9 and DEFAULTS["RETRY_JITTER"] == 0.2


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == {**DEFAULTS, "max_workers": DEFAULTS["MAX_WORKERS"]}


def test_max_workers_reaches_nameko_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_WORKERS", "25")
    assert load_config()["max_workers"] == 25 and DEFAULTS["MAX_WORKERS"] == 100


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def _readme_settings():
    """(names, default) of each row of the README's configuration table."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| (.+?) \|", section, re.MULTILINE)
    assert rows, "no configuration table in README.md"
    return [(re.findall(r"`([A-Z_]+)`", names), default) for names, default in rows]


@pytest.mark.parametrize("name, default", [
    (name, default) for names, default in _readme_settings() for name in names])
def test_every_setting_the_readme_lists_is_read_from_the_environment(clean_env, name, default):
    clean_env.setenv(name, f"from-env-{name}")
    assert load_config()[name] == f"from-env-{name}"
    if default != "unset":  # and its default is the one the README states
        assert DEFAULTS[name] == yaml.safe_load(default.strip("`"))


def test_module_settings_come_from_the_environment_typed(clean_env):
    clean_env.setenv("ATTENDANCE_CLOSE_INTERVAL_SECONDS", "0")
    clean_env.setenv("DIRECTORY_SNAPSHOT_ON_EMPTY", "false")
    clean_env.setenv("ATTENDANCE_FIRST_DAY", "2026-12-01")
    clean_env.setenv("DIRECTORY_FLAG", "yes")
    clean_env.setenv("PAMONG_T_HOST", "not-a-module-setting")
    config = load_config()
    assert config["ATTENDANCE_CLOSE_INTERVAL_SECONDS"] == 0
    assert config["DIRECTORY_SNAPSHOT_ON_EMPTY"] is False  # "false" would be a true string
    assert config["ATTENDANCE_FIRST_DAY"] == "2026-12-01" and config["DIRECTORY_FLAG"] == "yes"
    assert "PAMONG_T_HOST" not in config

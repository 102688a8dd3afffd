import pytest

from configlite import Config, ConfigError, InterpolationError


TEXT = """\
[paths]
root = /srv/app
logs = ${root}/logs

[server]
host = 0.0.0.0
port = 8080
debug = off
workers = 4
timeout = 30s
allowed = alice, bob
log_file = ${paths:root}/server.log
price = $$5
"""


def make():
    return Config.from_string(TEXT)


def test_get_plain_value():
    assert make().get("server", "host") == "0.0.0.0"


def test_get_missing_uses_default():
    cfg = make()
    assert cfg.get("server", "nope", default="x") == "x"
    assert cfg.get_int("server", "nope", default=None) is None


def test_get_missing_raises():
    with pytest.raises(ConfigError):
        make().get("server", "nope")


def test_typed_getters():
    cfg = make()
    assert cfg.get_int("server", "port") == 8080
    assert cfg.get_bool("server", "debug") is False
    assert cfg.get_list("server", "allowed") == ["alice", "bob"]
    assert cfg.get_duration("server", "timeout") == 30


def test_local_interpolation():
    assert make().get("paths", "logs") == "/srv/app/logs"


def test_cross_section_interpolation():
    assert make().get("server", "log_file") == "/srv/app/server.log"


def test_escaped_dollar():
    assert make().get("server", "price") == "$5"


def test_missing_reference_raises():
    cfg = Config.from_string("[a]\nx = ${nowhere:y}\n")
    with pytest.raises(InterpolationError):
        cfg.get("a", "x")


def test_reference_cycle_is_detected():
    cfg = Config.from_string("[a]\nx = ${y}\ny = ${x}\n")
    with pytest.raises(InterpolationError):
        cfg.get("a", "x")


def test_apply_env_overrides_and_creates():
    cfg = make()
    env = {
        "MYAPP_SERVER__PORT": "9090",
        "MYAPP_CACHE__SIZE": "128",
        "OTHER_SERVER__PORT": "1",
        "MYAPP_BROKEN": "x",
    }
    assert cfg.apply_env(env, prefix="myapp") == 2
    assert cfg.get_int("server", "port") == 9090
    assert cfg.get_int("cache", "size") == 128


def test_apply_env_matches_existing_section_case_insensitively():
    cfg = Config.from_string("[Database]\nhost = db1\n")
    cfg.apply_env({"APP_DATABASE__HOST": "db2"}, prefix="APP_")
    assert cfg.sections() == ["Database"]
    assert cfg.get("Database", "host") == "db2"


def test_merged_layers_values():
    base = make()
    override = Config.from_string("[server]\nport = 80\n[extra]\nflag = yes\n")
    merged = base.merged(override)
    assert merged.get_int("server", "port") == 80
    assert merged.get("server", "host") == "0.0.0.0"
    assert merged.get_bool("extra", "flag") is True


def test_to_dict_resolves_references():
    data = make().to_dict()
    assert data["paths"]["logs"] == "/srv/app/logs"
    assert make().to_dict(resolve=False)["paths"]["logs"] == "${root}/logs"


def test_dump_keeps_raw_values(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text(make().dump(), encoding="utf-8")
    again = Config.from_file(path)
    assert again.to_dict(resolve=False) == make().to_dict(resolve=False)

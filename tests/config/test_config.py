import pytest
from grooverack.config import Settings, load_settings, parse_override
from grooverack.errors import ConfigError


def test_defaults_present():
    s = Settings()
    assert s["follow"] == 0.9
    assert s["density.kick"] == 0.5
    assert s["map.ride"] == 8


def test_out_of_range_names_key_value_and_range():
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=["follow=1.5"])
    msg = str(err.value)
    assert "'follow'" in msg and "1.5" in msg and "from 0 to 1" in msg


def test_unknown_key_refused():
    with pytest.raises(ConfigError, match="unknown config key 'folow'"):
        load_settings(overrides=["folow=0.5"])


def test_choice_and_bool(tmp_path):
    path = tmp_path / "grooverack.toml"
    path.write_text('tempo = 96\n[clock]\nppqn = 24\n[outputs]\ngate_mode = true\n')
    s = load_settings(path, ["clock.source=external"])
    assert s["tempo"] == 96.0 and s["clock.ppqn"] == 24 and s["outputs.gate_mode"] is True
    assert s["clock.source"] == "external"
    with pytest.raises(ConfigError, match="clock.ppqn"):
        load_settings(overrides=["clock.ppqn=5"])


def test_bad_toml_names_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("follow = = 1")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_settings(path)


def test_parse_override_strings():
    assert parse_override("board=sim") == ("board", "sim")
    assert parse_override("tempo=120") == ("tempo", 120)


def test_example_round_trips(tmp_path):
    path = tmp_path / "example.toml"
    path.write_text(Settings().to_toml())
    assert dict(load_settings(path)) == dict(Settings())


def test_a_job_whose_extra_is_missing_names_the_extra(monkeypatch, capsys):
    import builtins

    from grooverack import cli

    real_import = builtins.__import__

    def no_rtmidi(name, *args, **kwargs):
        if name.split(".")[0] == "rtmidi":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rtmidi)
    assert cli.main(["ports"]) == 2
    err = capsys.readouterr().err
    assert "'rtmidi'" in err and ".[desktop]" in err

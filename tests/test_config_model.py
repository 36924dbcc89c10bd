"""The pydantic config model: every problem at once, did-you-mean, secrets, environment parsing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from pydantic import SecretStr

from anomstream.stream.cli import build_parser
from anomstream.stream.config import Config, default_config_text, load_config
from anomstream.stream.errors import ConfigError

KEY = {"ANOMSTREAM_STATE__SIGNING_KEY": "k" * 16}


def _problems(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=KEY if environ is None else environ)
    return info.value


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    error = _problems(
        "[kafka]\ntopic_partitions = 0\nbootstrap_server = 'x'\n"
        "[alerts]\nmin_run = -1\n"
        "[[detector.templates]]\nname = ''\n",
        tmp_path,
    )
    problems = dict(error.problems)
    assert problems == {
        "kafka.topic_partitions": "must be > 0 (got 0)",
        "kafka.bootstrap_server": "unknown key, did you mean 'bootstrap_servers'?",
        "detector.templates[0].name": "must not be empty",
        "alerts.min_run": "must be > 0 (got -1)",
    }
    assert error.key == error.problems[0][0]  # callers that read one key get the first
    lines = str(error).splitlines()
    assert len(lines) == 4
    assert "config error at 'alerts.min_run': must be > 0 (got -1)" in lines


def test_cross_section_problems_are_reported_together(tmp_path: Path) -> None:
    error = _problems(
        "[alerts]\nthreshold = 0.99\nclear_threshold = 0.995\ncritical_threshold = 0.9\n"
        "[state]\nenabled = false\nexactly_once = true\n",
        tmp_path,
    )
    assert {key for key, _ in error.problems} == {
        "alerts.clear_threshold",
        "alerts.critical_threshold",
        "state.exactly_once",
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ANOMSTREAM_KAFKA__BOOTSTRAP_SERVER": "x"}, "config error at 'kafka.bootstrap_server': unknown key, did you mean 'bootstrap_servers'?"),
        ({"ANOMSTREAM_KAFK__GROUP_ID": "x"}, "config error at 'kafk': unknown key, did you mean 'kafka'?"),
        ({"ANOMSTREAM_STATE__ZZZ": "1"}, "config error at 'state.zzz': unknown key (known: changelog_topic,"),
    ],
)  # fmt: skip
def test_unknown_keys_suggest_the_closest(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    assert str(info.value).startswith(message)
    assert str(info.value).endswith(f"(from {next(iter(environ))})")  # where to look


def test_values_are_strict(tmp_path: Path) -> None:
    error = _problems(
        "[kafka]\ncreate_topics = 'yes'\ninput_topics = 3\n[alerts]\nthreshold = true\n", tmp_path
    )
    assert dict(error.problems) == {
        "kafka.input_topics": "expected a list, got 3",
        "kafka.create_topics": "expected true or false, got 'yes'",
        "alerts.threshold": "expected a number, got True",
    }
    assert load_config(environ=KEY, overrides={"alerts.cooldown": 0}).alerts.cooldown == 0
    assert (
        load_config(environ=KEY, overrides={"state.idle_ttl_seconds": 5}).state.idle_ttl_seconds
        == 5.0
    )


def test_environment_values_parse_as_toml_literals_but_strings_stay_strings() -> None:
    config = load_config(
        environ={
            # all digits: a secret is taken as written, never as a number
            "ANOMSTREAM_STATE__SIGNING_KEY": "12345678901234567890",
            "ANOMSTREAM_STATE__PREVIOUS_SIGNING_KEYS": "old-key-0123456789,older-key-0123456",
            "ANOMSTREAM_SERVICE__INSTANCE": "7",  # a string key: the name "7"
            "ANOMSTREAM_ALERTS__THRESHOLD": "0.999",
            "ANOMSTREAM_KAFKA__CREATE_TOPICS": "false",
            "ANOMSTREAM_KAFKA__INPUT_TOPICS": '["a", "b"]',
            "ANOMSTREAM_DETECTOR__PARAMS__N_TREES": "5",
            "ANOMSTREAM_DETECTOR__TEMPLATES": '[{ name = "hst", machine = "press-*" }]',
            "anomstream_http__port": "0",  # names are case-insensitive
        }
    )
    assert config.state.signing_key.get_secret_value() == "12345678901234567890"
    assert [k.get_secret_value() for k in config.state.previous_signing_keys] == [
        "old-key-0123456789",
        "older-key-0123456",
    ]
    assert config.service.instance == "7"
    assert (config.alerts.threshold, config.kafka.create_topics, config.http.port) == (
        0.999,
        False,
        0,
    )
    assert config.kafka.input_topics == ("a", "b")
    assert config.detector.params == {"n_trees": 5}
    assert config.detector.templates[0].machine == "press-*"


def test_secrets_are_secret_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = {
        "ANOMSTREAM_STATE__SIGNING_KEY": "signing-secret-0123456789",
        "ANOMSTREAM_STATE__PREVIOUS_SIGNING_KEYS": "previous-secret-0123456789",
        "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ANOMSTREAM_KAFKA__SASL_USERNAME": "svc",
        "ANOMSTREAM_KAFKA__SASL_PASSWORD": "sasl-secret-0123456789",
    }
    config = load_config(environ=secrets)
    assert isinstance(config.kafka.sasl_password, SecretStr)
    shown = [repr(config), str(config), json.dumps(config.model_dump(mode="json"))]
    # A mistyped secret is not echoed back in the error either.
    bad = _problems("[kafka]\nssl_password = 123456789\n", tmp_path)
    shown.append(str(bad))
    assert "a secret value" in str(bad)
    path = tmp_path / "ok.toml"
    path.write_text("")
    args = build_parser().parse_args(["config", "--config", str(path)])
    with pytest.MonkeyPatch.context() as patch:
        for name, value in secrets.items():
            patch.setenv(name, value)
        assert args.func(args) == 0
    out = capsys.readouterr().out
    shown.append(out)
    assert json.loads(out)["kafka"]["sasl_username"] == "svc"
    hidden = [value for value in secrets.values() if "-secret-" in value] + ["123456789"]
    for text in shown:
        assert not [secret for secret in hidden if secret in text], text


def test_with_overrides_revalidates_and_keeps_secrets() -> None:
    config = load_config(environ=KEY)
    changed = config.with_overrides({"kafka.group_id": "other", "detector.warmup": 0})
    assert (changed.kafka.group_id, changed.detector.warmup) == ("other", 0)
    assert changed.state.signing_key == config.state.signing_key
    with pytest.raises(ConfigError) as info:
        config.with_overrides({"kafka.group_idd": "x", "alerts.min_run": 0})
    assert [key for key, _ in info.value.problems] == ["kafka.group_idd", "alerts.min_run"]
    with pytest.raises(Exception, match="frozen"):
        config.kafka.group_id = "mutated"  # type: ignore[misc]


def test_shipped_file_lists_every_key_with_the_model_default() -> None:
    shipped = tomllib.loads(default_config_text())
    defaults = Config().model_dump()
    assert shipped.keys() == defaults.keys()
    for section, values in defaults.items():
        assert shipped[section].keys() == values.keys(), section
        for key, value in values.items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            expected = list(value) if isinstance(value, tuple) else value
            assert shipped[section][key] == expected, f"{section}.{key}"
    assert load_config(environ={}) == Config()


def test_only_load_config_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMSTREAM_KAFKA__GROUP_ID", "from-the-environment")
    assert Config().kafka.group_id == "anomstream"  # constructing a Config is explicit
    assert load_config().kafka.group_id == "from-the-environment"
    assert load_config(environ={}).kafka.group_id == "anomstream"

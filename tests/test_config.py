from __future__ import annotations

import pytest

from anomstream.stream.config import Config, load_config
from anomstream.stream.errors import ConfigError

KEY = {"ANOMSTREAM_STATE__SIGNING_KEY": "k" * 16}


def test_defaults_load_and_validate() -> None:
    config = load_config(environ=KEY)
    assert isinstance(config, Config)
    assert config.kafka.input_topics == ("telemetry",)
    assert config.detector.name == "default"


def test_file_env_and_overrides_layer_in_order(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kafka]\ngroup_id = "from-file"\ntopic_partitions = 4\n')
    config = load_config(
        path,
        environ={"ANOMSTREAM_KAFKA__TOPIC_PARTITIONS": "6", "ANOMSTREAM_KAFKA__INPUT_TOPICS": "a, b", **KEY},
        overrides={"kafka.group_id": "from-flag", "http.port": None},
    )
    assert config.kafka.group_id == "from-flag"
    assert config.kafka.topic_partitions == 6
    assert config.kafka.input_topics == ("a", "b")
    assert config.http.port == 9464  # a None override (flag not given) changes nothing


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('[kafka]\ngroup_idd = "x"\n', "kafka.group_idd", "unknown key"),
        ("[nope]\n", "nope", "unknown key"),
        ("[kafka]\ntopic_partitions = 0\n", "kafka.topic_partitions", "must be > 0"),
        ('[kafka]\ntopic_partitions = "3"\n', "kafka.topic_partitions", "expected an integer"),
        ('[kafka]\nauto_offset_reset = "middle"\n', "kafka.auto_offset_reset", "must be one of"),
        ("[alerts]\nthreshold = 1.5\n", "alerts.threshold", "(0, 1]"),
        ("[alerts]\nclear_threshold = 0.999\nthreshold = 0.99\n", "alerts.clear_threshold", "hysteresis"),
        ('[detector]\nentity = "plant"\n', "detector.entity", "must be one of"),
        ("[http]\nport = 70000\n", "http.port", "port"),
        ('[[detector.templates]]\nname = "hst"\nextra = 1\n', "detector.templates[0].extra", "unknown key"),
        ("[kafka\n", "--config", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text: str, key: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=KEY)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", environ={})


def test_unknown_env_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(environ={"ANOMSTREAM_KAFKA__GROUPID": "x"})


def test_templates_parse() -> None:
    config = load_config(
        environ=KEY,
        overrides={"detector.templates": [{"name": "hst", "machine": "press-*", "params": {"n_trees": 5}}]},
    )
    (template,) = config.detector.templates
    assert template.name == "hst" and template.sensor == "*" and template.params == {"n_trees": 5}


def test_state_needs_a_signing_key_that_stays_secret() -> None:
    keyless = load_config(environ={})  # loads: simulate and replay never touch state
    with pytest.raises(ConfigError, match="ANOMSTREAM_STATE__SIGNING_KEY") as info:
        keyless.require_signing_key()  # the service's start-up check
    assert info.value.key == "state.signing_key"
    with pytest.raises(ConfigError, match="at least 16"):
        load_config(environ={"ANOMSTREAM_STATE__SIGNING_KEY": "short"})
    secret = "a-very-secret-signing-key"
    config = load_config(environ={"ANOMSTREAM_STATE__SIGNING_KEY": secret})
    assert secret not in repr(config)
    assert load_config(environ={"ANOMSTREAM_STATE__ENABLED": "false"}).state.enabled is False


def test_signing_key_can_come_from_a_secret_file(tmp_path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-mounted-secret-file\n")
    config = load_config(environ={"ANOMSTREAM_STATE__SIGNING_KEY_FILE": str(secret)})
    assert config.state.signing_key.get_secret_value() == "from-a-mounted-secret-file"
    with pytest.raises(ConfigError, match="not both"):
        load_config(environ={"ANOMSTREAM_STATE__SIGNING_KEY_FILE": str(secret), **KEY})
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_config(environ={"ANOMSTREAM_STATE__SIGNING_KEY_FILE": str(tmp_path / "missing")})
    assert info.value.key == "state.signing_key_file"

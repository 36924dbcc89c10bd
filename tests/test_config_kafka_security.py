"""The [kafka] TLS / SASL / start-up settings and the client options built from them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from anomstream.stream.config import kafka_client_options, load_config
from anomstream.stream.errors import ConfigError
from anomstream.stream.options import add_config_flags, add_kafka_flags, config_from_args

KEY = {"ANOMSTREAM_STATE__SIGNING_KEY": "k" * 16}


def _pem(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # only readability is checked
    return str(path)


def test_defaults_are_plaintext_with_a_startup_timeout() -> None:
    kafka = load_config(environ=KEY).kafka
    assert kafka.security_protocol == "PLAINTEXT"
    assert kafka.startup_timeout_seconds == 60.0
    assert kafka.ssl_check_hostname is True and kafka.sasl_mechanism == "PLAIN"
    assert kafka_client_options(kafka) == {"security_protocol": "PLAINTEXT"}


def test_ssl_options_carry_only_the_tls_settings(tmp_path: Path) -> None:
    ca, cert, key = (_pem(tmp_path, n) for n in ("ca.pem", "client.pem", "client.key"))
    kafka = load_config(
        environ={
            **KEY,
            "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SSL",
            "ANOMSTREAM_KAFKA__SSL_CAFILE": ca,
            "ANOMSTREAM_KAFKA__SSL_CERTFILE": cert,
            "ANOMSTREAM_KAFKA__SSL_KEYFILE": key,
            "ANOMSTREAM_KAFKA__SSL_PASSWORD": "key-password",
            "ANOMSTREAM_KAFKA__SSL_CHECK_HOSTNAME": "false",
            "ANOMSTREAM_KAFKA__SASL_USERNAME": "ignored-without-sasl",
        }
    ).kafka
    assert kafka_client_options(kafka) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": False,
        "ssl_cafile": ca,
        "ssl_certfile": cert,
        "ssl_keyfile": key,
        "ssl_password": "key-password",
    }
    assert "key-password" not in repr(kafka)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_options_use_kafka_pythons_plain_names(tmp_path: Path, mechanism: str) -> None:
    secret = tmp_path / "sasl-password"
    secret.write_text("s3cret-from-file\n")
    kafka = load_config(
        environ={
            **KEY,
            "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "ANOMSTREAM_KAFKA__SASL_MECHANISM": mechanism,
            "ANOMSTREAM_KAFKA__SASL_USERNAME": "svc",
            "ANOMSTREAM_KAFKA__SASL_PASSWORD_FILE": str(secret),
            "ANOMSTREAM_KAFKA__SSL_CAFILE": _pem(tmp_path, "ca.pem"),  # not used without TLS
        }
    ).kafka
    assert kafka_client_options(kafka) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret-from-file",
    }
    assert "s3cret-from-file" not in repr(kafka)


def test_sasl_ssl_carries_both(tmp_path: Path) -> None:
    kafka = load_config(
        environ={
            **KEY,
            "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "ANOMSTREAM_KAFKA__SASL_USERNAME": "svc",
            "ANOMSTREAM_KAFKA__SASL_PASSWORD": "pw",
        }
    ).kafka
    options = kafka_client_options(kafka)
    assert options["ssl_check_hostname"] is True and "ssl_cafile" not in options
    assert options["sasl_plain_password"] == "pw"


@pytest.mark.parametrize(
    ("env", "key", "fragment"),
    [
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_PASSWORD": "pw"}, "sasl_username", "required"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_USERNAME": "u"}, "sasl_password", "req"),
        ({"SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism", "must be one of"),
        ({"SECURITY_PROTOCOL": "TLS"}, "security_protocol", "must be one of"),
        ({"STARTUP_TIMEOUT_SECONDS": "0"}, "startup_timeout_seconds", "must be > 0"),
        ({"SSL_PASSWORD": "pw"}, "ssl_password", "ssl_keyfile"),
        ({"SSL_CAFILE": "/nonexistent/ca.pem"}, "ssl_cafile", "/nonexistent/ca.pem"),
        ({"SSL_KEYFILE": "/nonexistent/k.pem"}, "ssl_keyfile", "cannot read"),
        ({"SASL_PASSWORD_FILE": "/nonexistent/pw"}, "sasl_password_file", "/nonexistent/pw"),
        ({"SASL_PASSWORD_FILE": "/x", "SASL_PASSWORD": "pw"}, "sasl_password_file", "not both"),
    ],
)
def test_bad_security_settings_name_the_key(env: dict[str, str], key: str, fragment: str) -> None:
    environ = {**KEY, **{f"ANOMSTREAM_KAFKA__{name}": value for name, value in env.items()}}
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    assert info.value.key == f"kafka.{key}"
    assert fragment in str(info.value)


def test_security_flags_reach_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMSTREAM_STATE__SIGNING_KEY", "k" * 16)
    secret = tmp_path / "pw"
    secret.write_text("flag-file-password")
    ca = _pem(tmp_path, "ca.pem")
    for service in (True, False):  # `run` and `simulate` alike
        parser = argparse.ArgumentParser()
        add_config_flags(parser)
        add_kafka_flags(parser, service=service)
        args = parser.parse_args(
            ["--security-protocol", "SASL_SSL", "--ssl-cafile", ca, "--sasl-mechanism",
             "SCRAM-SHA-512", "--sasl-username", "svc", "--sasl-password-file", str(secret)]
        )  # fmt: skip
        kafka = config_from_args(args).kafka
        assert kafka.security_protocol == "SASL_SSL" and kafka.ssl_cafile == ca
        assert kafka.sasl_mechanism == "SCRAM-SHA-512"
        assert kafka.sasl_password.get_secret_value() == "flag-file-password"
        # no password flags: they would show in `ps`
        assert not {"--sasl-password", "--ssl-password"} & set(parser._option_string_actions)

"""anomstream against secured brokers: one that only speaks TLS (mutual: the client presents a
certificate with an encrypted key) end to end, a certificate it does not trust, a broker that
requires SASL, and secrets kept out of logs, `repr` and `anomstream config`.

The embedded Tansu serves TLS through `TlsFront` (Tansu 0.6 cannot itself: see
`anomstream.stream.tls_front`); every byte between the clients and Tansu crosses a real TLS
session on TCP, checked by kafka-python's own `ssl` context.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import validate_alert
from kafka_helpers import produce_sim, read_topic, service_config, wait_until
from process_helpers import ANOMSTREAM, ServiceProcess
from tls_helpers import CLIENT_KEY_PASSWORD, TlsFiles, make_tls_files, tls_broker

from anomstream.stream.broker import EmbeddedBroker, wait_for_kafka
from anomstream.stream.config import load_config
from anomstream.stream.errors import BrokerUnavailable
from anomstream.stream.kafka_io import common_client_config
from anomstream.stream.simulator import FaultSpec, Simulator

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_kafka(tls_files: TlsFiles) -> Iterator[str]:
    with tls_broker(tls_files) as broker:
        yield broker.bootstrap_servers


def test_the_broker_speaks_only_tls_and_wants_our_client_certificate(tls_kafka: str, tls_files: TlsFiles) -> None:
    assert wait_for_kafka(tls_kafka, 5, client_options=tls_files.client_options())
    # Plaintext to the TLS port: never answered (the wait runs to its timeout).
    with pytest.raises(BrokerUnavailable, match="within 2 s"):
        wait_for_kafka(tls_kafka, 2)
    # TLS but no client certificate: the server ends the handshake.
    anonymous = {"security_protocol": "SSL", "ssl_cafile": str(tls_files.ca)}
    with pytest.raises(BrokerUnavailable):
        wait_for_kafka(tls_kafka, 2, client_options=anonymous)


def test_service_end_to_end_over_tls_with_checkpoints(tls_kafka: str, tls_files: TlsFiles, unique: str) -> None:
    tls = tls_files.client_options()
    config = service_config(tls_kafka, unique, **tls_files.settings())  # creates the topics over TLS
    assert config.state.enabled
    assert CLIENT_KEY_PASSWORD not in repr(config)
    sim = Simulator(machines=2, seed=9, faults=[
        FaultSpec("press-01", "temp_c", "spike", start_index=300, duration=2, magnitude=7.0),
    ])
    produce_sim(tls_kafka, config.kafka.input_topics[0], sim, 2 * 500, client_options=tls)
    env = {**tls_files.environment(), "ANOMSTREAM_STATE__CHECKPOINT_INTERVAL_SECONDS": "1"}

    def alerts() -> list[dict[str, Any]]:
        return [validate_alert(r.value) for r in read_topic(tls_kafka, config.kafka.alert_topic, client_options=tls)]

    with ServiceProcess(config, **env) as service:
        wait_until(lambda: len(alerts()) >= 2 or not service.alive, 120, what="the alert over TLS")
        assert service.alive, service.output()
        wait_until(lambda: service.sample("anomstream_checkpoints_total") >= 1, 30, what="a checkpoint")
        assert service.stop() == 0, service.output()
        log = service.output()
    found = alerts()
    assert [(a["machine_id"], a["status"]) for a in found] == [("press-01", "firing"), ("press-01", "resolved")]
    assert "temp_c" in [s["name"] for s in found[0]["sensors"]]
    changelog = read_topic(tls_kafka, config.state.changelog_topic, client_options=tls)
    assert {r.key for r in changelog} == {m.encode() for m in sim.machine_ids}  # state checkpointed
    assert "Traceback" not in log
    assert CLIENT_KEY_PASSWORD not in log


def test_untrusted_server_certificate_is_refused_at_once_with_one_clear_line(
    tls_kafka: str, tls_files: TlsFiles, unique: str
) -> None:
    config = service_config(tls_kafka, unique, **tls_files.settings())
    # Trusting another CA; a long start-up timeout, to show the refusal does not wait it out.
    env = {**tls_files.environment(cafile=tls_files.other_ca), "ANOMSTREAM_KAFKA__STARTUP_TIMEOUT_SECONDS": "120"}
    with ServiceProcess(config, **env) as service:
        assert service.process is not None
        started = time.monotonic()
        code = service.process.wait(60)
        elapsed = time.monotonic() - started
        log = service.output()
    assert code not in (0, 1), log  # BrokerUnavailable: 69 once cli.py maps it (helper "layout")
    assert elapsed < 45, elapsed  # the interpreter's start-up included; far below the timeout
    errors = [line for line in log.splitlines() if line.startswith("anomstream:")]
    assert len(errors) == 1, log
    # OpenSSL's reason: the server (mutual TLS: it holds our CA to check clients) sends our
    # self-signed root along; a server sending only its leaf gets "unable to get local issuer".
    assert re.search(r"TLS handshake refused: certificate verify failed: (self-signed certificate in "
                     r"certificate chain|unable to get local issuer certificate)$", errors[0]), log
    assert "Traceback" not in log and "kafka.net" not in log, log
    assert CLIENT_KEY_PASSWORD not in log


def test_secrets_stay_out_of_anomstream_config(tls_files: TlsFiles, tmp_path: Path) -> None:
    sasl_password = "sasl-pass-2b8e41d0-never-shown"
    env = {
        **tls_files.environment(), "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "ANOMSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "ANOMSTREAM_KAFKA__SASL_USERNAME": "svc",
        "ANOMSTREAM_KAFKA__SASL_PASSWORD": sasl_password, "PATH": "/usr/bin:/bin",
        "ANOMSTREAM_STATE__SIGNING_KEY": "signing-key-0123456789",
    }
    shown = subprocess.run([*ANOMSTREAM, "config"], env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    assert "SCRAM-SHA-512" in shown.stdout  # it is the effective config being shown
    for secret in (sasl_password, CLIENT_KEY_PASSWORD):
        assert secret not in shown.stdout + shown.stderr


def test_embedded_broker_without_its_tls_settings_does_not_start(tls_files: TlsFiles) -> None:
    # The start-up check of EmbeddedBroker itself goes over TLS: wrong trust, no start.
    broker = EmbeddedBroker(
        tls=tls_files.server(), startup_timeout=10,
        client_options=tls_files.client_options(cafile=tls_files.other_ca),
    )
    with pytest.raises(BrokerUnavailable, match="certificate verify failed"):
        broker.start()


# SASL. Tansu 0.6's `--authentication` requires SASL on every connection (a client without it
# gets NotAuthenticated and is disconnected) and offers SCRAM-SHA-256 and SCRAM-SHA-512 only
# (PLAIN: "NoSharedMechanism", the connection is closed). Users are provisioned with
# `tansu user create` (AlterUserScramCredentials), but the storage engines of the vendored
# binary (memory://, s3://: "dynostore") keep no SCRAM credentials: the upsert is a no-op and
# the lookup always finds none (tansu v0.6.0 tansu-storage/src/dynostore.rs). So no login can
# succeed; what the real broker does check: the mechanism is negotiated and the whole SCRAM
# exchange (client-first with the user, server-first, client-final with the proof made from
# the password) runs on the wire, and the broker's refusal ("e=unknown-user") ends the start at
# once in one clear line without the password.
SASL_PASSWORD = "sasl-pass-91c0d7e5-never-logged"


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[str]:
    with EmbeddedBroker(extra_args=["--authentication"]) as broker:
        yield broker.bootstrap_servers


def _sasl_options(mechanism: str) -> dict[str, Any]:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
            "sasl_plain_username": "anomstream", "sasl_plain_password": SASL_PASSWORD}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_runs_and_the_refusal_ends_the_wait_at_once(sasl_kafka: str, mechanism: str) -> None:
    # What a service's log handler (on the root logger) would get, at DEBUG. (Not caplog:
    # pytest also hooks its handler onto loggers that do not propagate, such as `kafka`
    # while a probe of an earlier test still runs quietly.)
    root, collect = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable) as info:
            wait_for_kafka(sasl_kafka, 30, client_options=_sasl_options(mechanism))
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert time.monotonic() - started < 10  # not the 30 s timeout
    assert str(info.value) == (f"cannot connect to Kafka at {sasl_kafka}: "
                               "SASL authentication refused: the broker rejected the SCRAM credentials")
    assert not [line for line in collect.lines if line.startswith("kafka")]
    assert not [line for line in collect.lines if SASL_PASSWORD in line]


def test_sasl_broker_refuses_clients_without_sasl_and_plain(sasl_kafka: str) -> None:
    for options in ({}, _sasl_options("PLAIN")):
        with pytest.raises(BrokerUnavailable, match="within 2 s"):
            wait_for_kafka(sasl_kafka, 2, client_options=options)


def test_service_with_scram_password_file_stops_with_one_clear_line(
    sasl_kafka: str, unique: str, tmp_path: Path
) -> None:
    secret = tmp_path / "sasl-password"
    secret.write_text(SASL_PASSWORD + "\n")
    # Topics cannot be created on this broker (nobody can log in): a plaintext config suffices
    # for ServiceProcess's arguments; the security settings come from the environment.
    config = load_config(environ={}, overrides={"kafka.bootstrap_servers": sasl_kafka,
                                                "kafka.group_id": f"group-{unique}",
                                                "state.signing_key": "anomstream-test-signing-key"})
    env = {"ANOMSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "ANOMSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
           "ANOMSTREAM_KAFKA__SASL_USERNAME": "anomstream",
           "ANOMSTREAM_KAFKA__SASL_PASSWORD_FILE": str(secret)}
    with ServiceProcess(config, **env) as service:
        assert service.process is not None
        code = service.process.wait(60)
        log = service.output()
    assert code not in (0, 1), log
    errors = [line for line in log.splitlines() if line.startswith("anomstream:")]
    assert errors == [(f"anomstream: cannot connect to Kafka at {sasl_kafka}: SASL authentication "
                       "refused: the broker rejected the SCRAM credentials")], log
    assert "Traceback" not in log and SASL_PASSWORD not in log


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_every_client_gets_the_sasl_settings(mechanism: str, tmp_path: Path) -> None:
    # Unit level (no broker can log a client in, see above): the one mapping all clients use.
    kafka = load_config(environ={}, overrides={
        "kafka.security_protocol": "SASL_SSL", "kafka.sasl_mechanism": mechanism,
        "kafka.sasl_username": "svc", "kafka.sasl_password": SASL_PASSWORD,
        "state.signing_key": "anomstream-test-signing-key",
    }).kafka
    options = common_client_config(kafka)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "svc" and options["sasl_plain_password"] == SASL_PASSWORD
    assert SASL_PASSWORD not in repr(kafka)


def test_simulate_publishes_over_tls_with_the_operator_flags(tls_kafka: str, tls_files: TlsFiles, unique: str) -> None:
    # The flags an operator types (the key's password only from the environment: no flag, so
    # it never shows in `ps`), through the same client settings as the service's.
    config = service_config(tls_kafka, unique, **tls_files.settings())
    topic = config.kafka.input_topics[0]
    done = subprocess.run(
        [*ANOMSTREAM, "simulate", "--bootstrap-servers", tls_kafka, "--topic", topic, "--count", "40",
         "--rate", "0", "--clean", "--security-protocol", "SSL", "--ssl-cafile", str(tls_files.ca),
         "--ssl-certfile", str(tls_files.client_cert), "--ssl-keyfile", str(tls_files.client_key)],
        env={**os.environ, "ANOMSTREAM_KAFKA__SSL_PASSWORD": CLIENT_KEY_PASSWORD},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert CLIENT_KEY_PASSWORD not in done.stdout + done.stderr
    assert len(read_topic(tls_kafka, topic, client_options=tls_files.client_options())) == 40

"""anomstream against a broker that only speaks TLS (mutual: the client presents a certificate
with an encrypted key): end to end, a certificate it does not trust, secrets kept out of sight.

The embedded Tansu serves TLS through `TlsFront` (Tansu 0.6 cannot itself: see
`anomstream.stream.tls_front`); every byte between the clients and Tansu crosses a real TLS
session on TCP, checked by kafka-python's own `ssl` context.
"""

from __future__ import annotations

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
from anomstream.stream.errors import BrokerUnavailable
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
    shown = subprocess.run([*ANOMSTREAM, "config"], env=env, capture_output=True, text=True, timeout=60)
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

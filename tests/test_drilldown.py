"""`GET /machines/{id}` and the model census: the pure drill-down on a pipeline fed with fake
records, over a real HTTP socket, and on the running service on the embedded broker."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import quote

import numpy as np
import orjson
import pytest
from fakes import FakeClock, FakeRecord, records_from, validate_alert
from kafka_helpers import (
    TEST_SIGNING_KEY, produce, produce_sim, read_topic, running_service, service_config, wait_until,
)
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from anomstream.stream.config import load_config
from anomstream.stream.drilldown import Busy, DrillDown, json_safe
from anomstream.stream.http import Health, HttpServer
from anomstream.stream.metrics import MODEL_AGE_BUCKETS, Metrics, ModelCensus
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator

FAULT = FaultSpec(machine="lathe-02", sensor="temp_c", kind="level_shift", start_index=600, duration=80,
                  magnitude=5.0)
ODD_ID = "hall 3/press#7?ü"  # needs URL encoding: a space, '/', '#', '?' and a non-ASCII letter


def _pipeline(**overrides: object) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, **overrides})
    return Pipeline(config, metrics=Metrics(registry), clock=FakeClock()), registry


def _attribution(alert: dict) -> list[dict]:
    """An alert message's sensors as the drill-down lists them: name and contribution."""
    return [{"name": s["name"], "contribution": s["contribution"]} for s in alert["sensors"]]


@contextmanager
def _batch_running(pipeline: Pipeline) -> Iterator[None]:
    """What the processing loop does during a batch: hold the pipeline's lock, in its thread."""
    held, release = threading.Event(), threading.Event()

    def batch() -> None:
        with pipeline.lock:
            held.set()
            release.wait(10)

    worker = threading.Thread(target=batch)
    worker.start()
    held.wait(5)
    try:
        yield
    finally:
        release.set()
        worker.join(5)


def _reading(machine: str, i: int, topic: str = "telemetry", partition: int = 0) -> FakeRecord:
    sensors = {"a": float(i % 7), "b": 1.0 + i % 3}
    value = orjson.dumps({"machine_id": machine, "ts": 1.7e9 + i, "sensors": sensors})
    return FakeRecord(topic, partition, i, int((1.7e9 + i) * 1000), machine.encode(), value)


@pytest.fixture(scope="module")
def faulted() -> tuple[Pipeline, list, list]:
    """A pipeline that saw a level shift fire on lathe-02 and not resolve yet."""
    sim = Simulator(machines=3, seed=3, start_time=1_700_000_000.0, faults=[FAULT])
    pipeline, _ = _pipeline()
    records = records_from(sim.readings(3 * 640))
    alerts = [validate_alert(m.value) for i in range(0, len(records), 500)
              for m in pipeline.process(records[i:i + 500]).alerts]
    assert [(a["machine_id"], a["status"]) for a in alerts] == [("lathe-02", "firing")]
    return pipeline, records, alerts


# ============================================================================ the JSON itself
def test_machine_json_has_sensors_models_last_reading_and_the_open_alert(faulted: tuple) -> None:
    pipeline, records, (alert,) = faulted
    body = DrillDown(pipeline).machine("lathe-02")
    assert body is not None
    json.dumps(body, allow_nan=False)  # strict JSON
    assert body["machine_id"] == "lathe-02" and body["readings"] == 640
    warmup = pipeline.config.detector.warmup
    sensors = {s["name"]: s for s in body["sensors"]}
    assert set(sensors) == set(orjson.loads(records[0].value)["sensors"])
    for s in sensors.values():
        assert s == {"name": s["name"], "detector": "default", "learned": 640, "warm": True}, s
    assert body["machine_model"] == {"name": "*", "detector": "relations", "learned": 640, "warm": 640 >= warmup}
    assert body["policy"]["phase"] == "firing"
    mine = [r for r in records if r.key == b"lathe-02"]
    last = body["last_reading"]
    assert (last["topic"], last["partition"], last["offset"]) == ("telemetry", mine[-1].partition, mine[-1].offset)
    assert last["processed_at"] == "2027-01-15T08:00:00.000Z"  # the pipeline's (fake) clock
    (entry,) = body["open_alerts"]
    assert entry["alert_id"] == alert["alert_id"] and entry["kind"] == "anomaly"
    assert entry["severity"] == alert["severity"]
    assert entry["started_at"] == alert["started_at"] and entry["fired_at"] == alert["event_time"]
    # The attribution is the alert's: same sensors, same shares, same order.
    assert entry["sensors"] == _attribution(alert)
    assert "temp_c" in [s["name"] for s in entry["sensors"]]
    assert body["recent_alerts"] == []
    for section in ("health", "presence", "mode", "feedback"):
        assert isinstance(body[section], dict)


def test_a_machine_with_no_alert_and_one_not_held() -> None:
    pipeline, _ = _pipeline(**{"detector.warmup": 50})
    pipeline.process([_reading("m1", i) for i in range(20)])
    drill = DrillDown(pipeline)
    body = drill.machine("m1")
    assert body is not None and body["open_alerts"] == [] and body["policy"]["phase"] == "normal"
    assert {s["name"]: (s["learned"], s["warm"]) for s in body["sensors"]} == {"a": (20, False), "b": (20, False)}
    assert body["policy"]["started_at"] is None
    assert drill.machine("m2") is None


def test_closed_alerts_are_listed_newest_first_with_their_resolution() -> None:
    sim = Simulator(machines=3, seed=3, start_time=1_700_000_000.0, faults=[FAULT])
    pipeline, _ = _pipeline()
    records = records_from(sim.readings(3 * 1200))
    alerts = [validate_alert(m.value) for i in range(0, len(records), 500)
              for m in pipeline.process(records[i:i + 500]).alerts]
    firing, resolved = alerts
    body = DrillDown(pipeline).machine("lathe-02")
    assert body is not None and body["open_alerts"] == []
    (entry,) = body["recent_alerts"]
    assert entry["alert_id"] == firing["alert_id"] and entry["resolved_at"] == resolved["event_time"]


def test_sections_come_from_the_features_and_times_render_iso(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, _ = _pipeline()
    pipeline.process([_reading("m1", i) for i in range(3)])
    monkeypatch.setattr(pipeline.presence, "describe", lambda state: {
        "last_event_time": 1.7e9 + 2, "last_seen_at": 1.7e9 + 5, "usual_interval_seconds": float("nan"),
    })
    monkeypatch.setattr(pipeline.modes, "describe", lambda state: {"mode": "cleaning", "since_at": 1.7e9})
    monkeypatch.setattr(pipeline.health, "describe", lambda state: {"a": {"open": {"stuck": {"started_at": 0}}}})
    monkeypatch.setattr(pipeline.feedback, "describe", lambda state: {"applied": np.int64(2)})
    body = DrillDown(pipeline).machine("m1")
    assert body is not None
    assert body["presence"] == {"last_event_time": "2023-11-14T22:13:22.000Z",
                                "last_seen_at": "2023-11-14T22:13:25.000Z", "usual_interval_seconds": None}
    assert body["last_reading"]["event_time"] == "2023-11-14T22:13:22.000Z"
    assert body["mode"] == {"mode": "cleaning", "since_at": "2023-11-14T22:13:20.000Z"}
    assert body["health"]["a"]["open"]["stuck"]["started_at"] == "1970-01-01T00:00:00.000Z"
    assert body["feedback"] == {"applied": 2}


def test_json_safe() -> None:
    assert json_safe({"x": float("inf"), "t_at": float("nan"), "s": {1, 2}, "o": object}) == {
        "x": None, "t_at": None, "s": [1, 2], "o": "<class 'object'>"}
    assert json_safe({"ok": True, "n_at": None}) == {"ok": True, "n_at": None}


def test_an_evicted_machine_answers_from_its_signed_state() -> None:
    pipeline, _ = _pipeline(**{"detector.max_entities": 4, "detector.machine_model": ""})
    pipeline.process([_reading("m1", i) for i in range(10)])
    pipeline.process([_reading("m2", i, partition=1) for i in range(10)])
    pipeline.process([_reading("m3", i, partition=1) for i in range(10)])
    assert "m1" not in dict(pipeline.models.live_states())  # evicted to signed bytes
    body = DrillDown(pipeline).machine("m1")
    assert body is not None and body["readings"] == 10 and body["partition"] == 0
    assert [s["learned"] for s in body["sensors"]] == [10, 10]


def test_the_machine_list_is_counts_and_a_bounded_list(faulted: tuple) -> None:
    pipeline, _, _ = faulted
    body = DrillDown(pipeline).machines()
    assert body["machines_live"] == 3 and body["models_live"] == len(pipeline.models)
    assert body["machines_with_open_alerts"] == 1 and body["with_open_alerts"] == ["lathe-02"]
    assert body["truncated"] is False
    capped = DrillDown(pipeline, list_limit=0).machines()
    assert capped["with_open_alerts"] == [] and capped["truncated"] is True


def test_reads_wait_for_the_batch_and_give_up_when_it_takes_too_long() -> None:
    pipeline, _ = _pipeline()
    pipeline.process([_reading("m1", i) for i in range(3)])
    drill = DrillDown(pipeline, lock_timeout=0.2)
    with _batch_running(pipeline):
        started = time.monotonic()
        with pytest.raises(Busy):
            drill.machine("m1")
        assert 0.15 < time.monotonic() - started < 2
        assert drill.census() is None  # a scrape serves the last census instead
    assert drill.machine("m1") is not None


# ===================================================================================== HTTP
@pytest.fixture
def http_server() -> Iterator[tuple[HttpServer, Pipeline]]:
    pipeline, registry = _pipeline()
    pipeline.process([_reading(ODD_ID, i) for i in range(5)])
    server = HttpServer(host="127.0.0.1", port=0, registry=registry, health=Health()).start()
    yield server, pipeline
    server.stop()


def _get(server: HttpServer, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "application/json"
    return response.status, json.loads(response.read())


def test_http_routes(http_server: tuple[HttpServer, Pipeline]) -> None:
    server, pipeline = http_server
    path = "/machines/" + quote(ODD_ID, safe="")
    status, body = _get(server, path)
    assert status == 503 and "starting" in body["error"]  # before the pipeline is handed over
    server.serve_machines(DrillDown(pipeline, lock_timeout=0.2))
    status, body = _get(server, path)
    assert status == 200 and body["machine_id"] == ODD_ID and body["readings"] == 5
    status, body = _get(server, path + "?pretty=1")  # a query string is not part of the id
    assert status == 200 and body["machine_id"] == ODD_ID
    status, body = _get(server, "/machines/press-99")
    assert status == 404 and body == {"error": "machine not held by this instance", "machine_id": "press-99"}
    status, body = _get(server, "/machines/%ff")
    assert status == 400
    status, body = _get(server, "/machines")
    assert status == 200 and body["machines_live"] == 1
    with pipeline.lock:  # held by this thread: the server's thread must give up
        status, body = _get(server, path)
    assert status == 503 and "busy" in body["error"]
    status, body = _get(server, "/nowhere")
    assert status == 404 and "/machines/{id}" in body["paths"]


# =============================================================================== the census
def test_model_census_counts_age_and_warm_up_at_scrape_time() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 15})
    pipeline.process([_reading("m1", i) for i in range(20)])
    pipeline.process([_reading("m2", i, partition=1) for i in range(10)])
    census = pipeline.metrics.model_census
    census.min_interval = 0.0  # count at every scrape (below: the interval)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    # Not bound yet: the series exist, empty.
    assert sample("anomstream_model_age_readings_count") == 0
    assert sample("anomstream_models_warming_up") == 0
    census.bind(DrillDown(pipeline).census)
    # m1: sensors a, b and the relations model at 20 readings; m2: the same at 10 (warming up).
    assert sample("anomstream_model_age_readings_count") == 6 == len(pipeline.models)
    assert sample("anomstream_model_age_readings_sum") == 3 * 20 + 3 * 10
    assert sample("anomstream_model_age_readings_bucket", le="10.0") == 3
    assert sample("anomstream_model_age_readings_bucket", le="50.0") == 6
    assert sample("anomstream_model_age_readings_bucket", le="+Inf") == 6
    assert sample("anomstream_models_warming_up") == 3
    # The pipeline busy: the last census is served, not a stall.
    with _batch_running(pipeline):
        started = time.monotonic()
        assert sample("anomstream_model_age_readings_count") == 6
        assert time.monotonic() - started < 3
    census.bind(None)
    assert len(MODEL_AGE_BUCKETS) == len(set(MODEL_AGE_BUCKETS))


def test_a_recent_census_is_served_again() -> None:
    clock = FakeClock(100.0)
    census = ModelCensus(None, min_interval=5.0, clock=clock)
    calls: list[int] = []

    def source() -> tuple[np.ndarray, int]:
        calls.append(1)
        return np.array([1, 2, 3] * len(calls)), len(calls)

    census.bind(source)
    assert census.census()[1] == 1
    clock.now += 4.9
    assert census.census()[1] == 1 and len(calls) == 1  # a second Prometheus: no second count
    clock.now += 0.1
    ages, warming = census.census()
    assert warming == 2 and list(ages) == [1, 2, 3] * 2


# ==================================================================== on the embedded broker
@pytest.mark.broker
def test_drilldown_on_the_running_service(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)
    topic = config.kafka.input_topics[0]
    sim = Simulator(machines=3, seed=3, faults=[FAULT])
    sent = produce_sim(kafka_broker, topic, sim, 3 * 640)  # lathe-02's alert fires, not resolved
    odd = [(ODD_ID.encode(), orjson.dumps({"machine_id": ODD_ID, "ts": 1.7e9 + i, "sensors": {"x": float(i)}}))
           for i in range(5)]
    sent += produce(kafka_broker, topic, odd)
    with running_service(config) as service:
        service.wait_consumed(sent, timeout=90)
        firing = wait_until(
            lambda: [a for a in map(validate_alert, (r.value for r in read_topic(kafka_broker, config.kafka.alert_topic)))
                     if a["status"] == "firing"],
            30, what="the firing alert",
        )
        assert [a["machine_id"] for a in firing] == ["lathe-02"]
        (alert,) = firing

        status, text = service.http_get("/machines/lathe-02")
        assert status == 200, text
        body = json.loads(text)
        (entry,) = body["open_alerts"]
        assert entry["alert_id"] == alert["alert_id"] and entry["kind"] == alert["kind"] == "anomaly"
        assert entry["sensors"] == _attribution(alert)
        assert body["readings"] == 640 and body["policy"]["phase"] == "firing"
        assert {s["name"] for s in body["sensors"]} >= {"temp_c"} and all(s["warm"] for s in body["sensors"])
        last = body["last_reading"]
        assert last["topic"] == topic and last["offset"] >= 0
        assert abs(datetime.fromisoformat(last["processed_at"]).timestamp() - time.time()) < 120

        status, text = service.http_get("/machines/" + quote(ODD_ID, safe=""))
        assert status == 200, text
        young = json.loads(text)
        assert young["machine_id"] == ODD_ID and young["readings"] == 5
        status, text = service.http_get("/machines/no-such-machine")
        assert status == 404 and json.loads(text)["machine_id"] == "no-such-machine"
        status, text = service.http_get("/machines")
        assert status == 200 and json.loads(text)["with_open_alerts"] == ["lathe-02"]

        # The census behind the aggregate metrics agrees with the model count.
        status, text = service.http_get("/metrics")
        values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
        assert values["anomstream_model_age_readings_count"] == values["anomstream_active_models"] > 0
        # Only the young machine's models (5 readings) are still in warm-up.
        assert values["anomstream_models_warming_up"] == len(young["sensors"]) + (young["machine_model"] is not None)

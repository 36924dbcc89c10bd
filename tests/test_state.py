"""Signed state, eviction and restore, replay skipping: pure logic, no broker."""

from __future__ import annotations

import pickle

import orjson
import pytest
from fakes import FakeClock, FakeRecord
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.detectors.entities import ModelStore, TemplateRule
from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.state_codec import StateCodec, StateRejected


class _Bomb:
    """Unpickling this would create a file: proof that rejected bytes are never unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


def test_codec_round_trip_and_rotation() -> None:
    old = StateCodec("old-key-0123456789")
    new = StateCodec("new-key-0123456789", previous_keys=["old-key-0123456789"])
    data = old.dumps({"a": [1, 2.5]})
    assert new.loads(data) == {"a": [1, 2.5]}  # old checkpoints still load during rotation
    with pytest.raises(StateRejected):
        old.loads(new.dumps("signed with the new key only"))
    assert "key" not in repr(new).lower().replace("key(s)", "")


@pytest.mark.parametrize("tamper", ["flip_body", "flip_tag", "truncate", "foreign_pickle", "empty"])
def test_tampered_state_is_rejected_without_unpickling(tmp_path, tamper: str) -> None:
    codec = StateCodec(TEST_SIGNING_KEY)
    marker = tmp_path / "pwned"
    good = codec.dumps({"model": 1})
    evil_body = pickle.dumps(_Bomb(str(marker)))
    data = {
        "flip_body": good[:-1] + bytes([good[-1] ^ 1]),
        "flip_tag": good[:5] + bytes([good[5] ^ 1]) + good[6:],
        "truncate": good[:20],
        "foreign_pickle": good[:33] + evil_body,  # valid header and old tag, attacker's body
        "empty": b"",
    }[tamper]
    with pytest.raises(StateRejected):
        codec.loads(data)
    assert not marker.exists()


def _store(codec: StateCodec | None, **kwargs: object) -> ModelStore:
    return ModelStore(default=TemplateRule("*", "*", "ewm-zscore", {}), codec=codec, **kwargs)


def test_only_changed_machines_are_checkpointed() -> None:
    store = _store(StateCodec(TEST_SIGNING_KEY))
    for machine, partition in (("a", 0), ("b", 1)):
        state = store.machine(machine, partition, now=0.0)
        store.entity(state, machine, "temp").model.learn_one({"value": 1.0})
        state.include("t", 0, 0)
    assert sorted((m, p) for m, p, _ in store.take_changes()) == [("a", 0), ("b", 1)]
    assert store.take_changes() == []  # nothing changed since
    store.machine("a", 0, now=1.0).include("t", 0, 1)
    assert [(m, p) for m, p, _ in store.take_changes(partitions=[1])] == []
    assert [m for m, _, _ in store.take_changes(partitions=[0])] == ["a"]


def test_cap_and_ttl_evict_to_signed_bytes_and_restore_on_next_reading() -> None:
    store = _store(StateCodec(TEST_SIGNING_KEY), max_entities=4, idle_ttl=10.0)
    for i, machine in enumerate(["m1", "m2", "m3"]):
        state = store.machine(machine, 0, now=float(i))
        for sensor in ("x", "y"):
            entity = store.entity(state, machine, sensor)
            entity.learned = 7
        state.include("t", 0, i)
    assert len(store) == 4 and store.machines == 2 and store.evicted == 1  # m1 went over the cap
    restored = store.machine("m1", 0, now=5.0)
    assert store.restored == 1 and restored.entities["x"].learned == 7 and restored.readings == 1
    # m1 coming back went over the cap again: m2 (least recently seen) made room
    assert store.evicted == 2 and store.machines == 2
    assert store.evict_idle(now=12.5) == 1  # m3 (seen at t=2) idle for > 10 s; m1 (t=5) stays
    assert store.machines == 1 and store.evicted == 3


def test_rejected_state_starts_fresh_and_is_counted() -> None:
    store = _store(StateCodec(TEST_SIGNING_KEY))
    store.install("m1", 0, StateCodec("another-key-0123456789").dumps("whatever"))
    state = store.machine("m1", 0, now=0.0)
    assert state.entities == {} and store.rejected == 1 and store.restored == 0


def _record(offset: int, value: float) -> FakeRecord:
    body = orjson.dumps({"machine_id": "m1", "ts": 1.7e9 + offset, "sensors": {"x": value}})
    return FakeRecord("telemetry", 0, offset, 0, b"m1", body)


def test_replayed_readings_covered_by_restored_state_are_skipped() -> None:
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, "detector.warmup": 0})
    first = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    first.process([_record(i, float(i % 5)) for i in range(50)])
    checkpoint = first.models.take_changes()
    second = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    for machine, partition, data in checkpoint:
        second.models.install(machine, partition, data)
    out = second.process([_record(i, float(i % 5)) for i in range(40, 60)])  # replay 40..49, new 50..59
    assert (out.skipped, out.readings) == (10, 10)
    state = second.models.machine("m1", 0, now=0.0)
    assert state.readings == 60 and state.entities["x"].learned == 60
    assert out.offsets == {("telemetry", 0): 60}


def test_open_alerts_follow_their_state_across_restore_and_release() -> None:
    import random

    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, "detector.warmup": 50})
    rng = random.Random(3)
    records = [_record(i, rng.gauss(0.0, 1.0)) for i in range(400)]
    records += [_record(400 + i, 50.0 + rng.gauss(0.0, 1.0)) for i in range(5)]  # a level shift
    first_registry = CollectorRegistry()
    first = Pipeline(config, metrics=Metrics(first_registry), clock=FakeClock())
    assert any(m for o in [first.process(records)] for m in o.alerts)
    labels = {"machine": "m1", "kind": "anomaly", "severity": "critical"}
    assert first_registry.get_sample_value("anomstream_alerts_firing", labels) == 1

    registry = CollectorRegistry()
    second = Pipeline(config, metrics=Metrics(registry), clock=FakeClock())
    for machine, partition, data in first.models.take_changes():
        second.models.install(machine, partition, data)
    second.process([_record(405, 50.0)])  # the machine's next reading restores it, still firing
    assert registry.get_sample_value("anomstream_alerts_firing", labels) == 1
    assert second.release([0]) == 1  # its partition moved away: the new owner reports it now
    assert registry.get_sample_value("anomstream_alerts_firing", labels) is None


def test_replays_are_told_apart_per_partition_and_older_state_still_restores() -> None:
    from anomstream.detectors.entities import MachineState

    state = MachineState()
    state.include("t", 1, 40)
    assert state.covers("t", 1, 40) and state.covers("t", 1, 3)
    assert not state.covers("t", 0, 3)  # another partition's offsets are not comparable
    assert not state.covers("u", 1, 3)
    restored = pickle.loads(pickle.dumps(state))
    assert restored.covers("t", 1, 40) and not restored.covers("t", 0, 3)
    # A checkpoint written before the partition was recorded: offsets compared alone, as then.
    older = MachineState.__new__(MachineState)
    older.__setstate__(({}, state.policy, 1, "t", 40))
    assert older.covers("t", 0, 3) and not older.covers("t", 0, 41)


class _SentFuture:
    exception = None

    def succeeded(self) -> bool:
        return True


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: object, partition: int) -> _SentFuture:
        self.sent.append((key.decode(), value))
        return _SentFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass


def test_a_state_too_large_for_one_record_is_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """Kafka refuses records over ~1 MB; a machine whose state outgrew that used to fail every
    checkpoint, and so stop the service again after each restart."""
    from anomstream.stream.checkpoint import MAX_STATE_BYTES, Checkpointer

    class _Store:
        def take_changes(self, partitions: object = None) -> list[tuple[str, int, bytes]]:
            return [("huge", 0, b"x" * (MAX_STATE_BYTES + 1)), ("small", 1, b"state")]

    registry = CollectorRegistry()
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY})
    producer = _FakeProducer()
    checkpointer = Checkpointer(
        config, store=_Store(), producer=producer, metrics=Metrics(registry),  # type: ignore[arg-type]
        reader_factory=lambda: None,  # type: ignore[arg-type,return-value]
    )
    assert checkpointer.write() == 1 and checkpointer.write() == 1
    assert producer.sent == [("small", b"state"), ("small", b"state")]
    assert registry.get_sample_value("anomstream_state_too_large_total") == 2
    assert sum("huge" in r.getMessage() for r in caplog.records) == 1  # logged once per machine

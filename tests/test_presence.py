"""Silent machines, pure logic: interval learning, the timer, expected silence, restore."""

from __future__ import annotations

import pickle
import time

import orjson
import pytest
from fakes import FakeClock, FakeRecord, validate_alert
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.detectors.entities import MachineState, ModelStore, TemplateRule
from anomstream.detectors.presence import Presence
from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.state_codec import StateCodec, StateRejected

T0 = 1_800_000_000.0


def _presence(**kwargs: object) -> Presence:
    params: dict[str, object] = {"factor": 5.0, "min_silence_seconds": 0.0, "min_readings": 5}
    params.update(kwargs)
    return Presence(**params)  # type: ignore[arg-type]


def _report(presence: Presence, state: MachineState, count: int, *, start: float = 0.0,
            every: float = 1.0, now: float = T0) -> float:
    """`count` readings `every` seconds apart (event time and wall clock alike); the last `now`."""
    for i in range(count):
        presence.seen(state, T0 + start + i * every, now + i * every, ["temp", "vib"])
    return now + (count - 1) * every


def _store(codec: StateCodec | None = None, **kwargs: object) -> ModelStore:
    return ModelStore(default=TemplateRule("*", "*", "default", {}), codec=codec, **kwargs)  # type: ignore[arg-type]


def _live(store: ModelStore, machine: str, partition: int = 0) -> MachineState:
    return store.machine(machine, partition, T0)


def test_the_usual_interval_is_the_median_gap_trusted_after_min_readings() -> None:
    presence = _presence()
    state = MachineState()
    _report(presence, state, 4, every=2.0)
    assert presence.describe(state)["usual_interval_seconds"] is None  # 3 gaps < min_readings - 1
    _report(presence, state, 1, start=8.0, now=T0 + 8.0)
    assert presence.describe(state)["usual_interval_seconds"] == 2.0
    # One late reading and one out of order do not move the median; neither do same-time ones.
    presence.seen(state, T0 + 30.0, T0 + 30.0, ["temp"])
    presence.seen(state, T0 + 29.0, T0 + 30.1, ["temp"])
    presence.seen(state, T0 + 30.0, T0 + 30.2, ["temp"])
    _report(presence, state, 3, start=32.0, every=2.0, now=T0 + 32.0)
    assert presence.describe(state)["usual_interval_seconds"] == 2.0
    assert presence.describe(state)["last_event_time"] == T0 + 36.0


def test_silence_fires_after_factor_times_the_interval_and_not_before() -> None:
    presence = _presence(factor=5.0, min_silence_seconds=3.0)
    store = _store()
    state = _live(store, "press-07")
    last = _report(presence, state, 10, every=1.0)
    assert presence.check(store, last + 5.0) == []  # 5 s = factor x 1 s: not yet
    fired = presence.check(store, last + 5.5)
    assert [(m, t.status, t.kind) for m, _, t in fired] == [("press-07", "firing", "silent")]
    t = fired[0][2]
    assert t.started_at == T0 + 9.0  # the event time of its last reading: a deterministic id
    assert dict(t.sensors) == {"temp": 0.5, "vib": 0.5} and t.score == 1.0
    assert t.severity == "warning" and t.detail == "no reading for 6 s (usual interval 1 s)"
    assert presence.silent == 1
    assert presence.check(store, last + 60.0) == []  # fires once
    # min_silence_seconds wins over a short interval
    quick = _presence(factor=2.0, min_silence_seconds=30.0)
    other = MachineState()
    last = _report(quick, other, 10, every=0.1)
    assert quick.silent_for(other, last + 29.0, partition=0) is None
    assert quick.silent_for(other, last + 31.0, partition=0) == pytest.approx(31.0)


def test_a_machine_seen_too_few_times_is_never_silent() -> None:
    presence = _presence(min_readings=10)
    store = _store()
    last = _report(presence, _live(store, "new"), 9)
    assert presence.check(store, last + 10_000.0) == []


def test_it_resolves_on_the_next_reading_with_the_same_episode() -> None:
    presence = _presence()
    store = _store()
    state = _live(store, "m")
    last = _report(presence, state, 10)
    firing = presence.check(store, last + 100.0)[0][2]
    back = presence.seen(state, T0 + 400.0, last + 100.5, ["temp", "vib", "new"])
    assert back is not None and back.status == "resolved" and back.kind == "silent"
    assert (back.started_at, dict(back.sensors)) == (firing.started_at, dict(firing.sensors))
    assert back.detail == "reported again after 100 s"
    assert presence.seen(state, T0 + 401.0, last + 101.5) is None
    # The silence itself was not learned as a usual gap.
    assert presence.describe(state)["usual_interval_seconds"] == 1.0
    assert presence.silent == 0


def test_no_silent_alert_while_silence_is_expected_and_it_counts_from_the_end() -> None:
    presence = _presence(factor=5.0)
    store = _store()
    state = _live(store, "m")
    last = _report(presence, state, 10)
    in_maintenance = True
    asked: list[float] = []

    def expected(s: MachineState, now: float) -> bool:
        asked.append(now)
        return in_maintenance

    assert presence.check(store, last + 10.0, expected) == []
    assert presence.check(store, last + 100.0, expected) == []
    assert asked == [last + 10.0, last + 100.0]
    in_maintenance = False
    assert presence.check(store, last + 104.0, expected) == []  # 4 s after the last excused look
    assert len(presence.check(store, last + 106.0, expected)) == 1


def test_a_gained_partition_gives_its_machines_a_grace_period() -> None:
    presence = _presence(factor=5.0)
    store = _store()
    state = _live(store, "m", partition=3)
    last = _report(presence, state, 10)
    presence.hold([3], last + 1000.0)  # got the partition long after the machine's last reading
    assert presence.check(store, last + 1004.0) == []
    fired = presence.check(store, last + 1006.0)
    assert fired and fired[0][2].detail == "no reading for 1006 s (usual interval 1 s)"


def test_the_timer_is_due_every_check_interval() -> None:
    presence = _presence(check_interval_seconds=5.0)
    assert presence.due(T0)
    presence.check(_store(), T0)
    assert not presence.due(T0 + 4.9) and presence.due(T0 + 5.0)
    assert not Presence(enabled=False).due(T0)


def test_disabled_it_raises_nothing_but_still_resolves_an_alert_opened_before() -> None:
    store = _store()
    state = _live(store, "m")
    last = _report(_presence(), state, 10)
    off = _presence(enabled=False)
    assert off.check(store, last + 1000.0) == [] and not off.due(last)
    _presence().check(store, last + 1000.0)  # opened while enabled (before a config change)
    back = off.seen(state, T0 + 2000.0, last + 1001.0, ["temp"])
    assert back is not None and back.status == "resolved"
    assert off.seen(MachineState(), T0, T0) is None


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="factor"):
        Presence(factor=0.5)
    with pytest.raises(ValueError, match="min_readings"):
        Presence(min_readings=2)


# ---------------------------------------------------------------- state: codec, store, restore


def test_the_codec_header_is_signed_and_read_without_unpickling() -> None:
    codec = StateCodec(TEST_SIGNING_KEY)
    data = codec.dumps({"big": "state"}, {"presence": [1.0, 2.0, ""]})
    assert data[:1] == b"\x02"
    assert codec.header(data) == {"presence": [1.0, 2.0, ""]}
    assert codec.loads(data) == {"big": "state"}
    old = codec.dumps({"v1": True})  # no header: version 1, as before
    assert old[:1] == b"\x01" and codec.header(old) == {} and codec.loads(old) == {"v1": True}
    tampered = data.replace(b"2.0", b"9.0")
    with pytest.raises(StateRejected):
        codec.header(tampered)
    with pytest.raises(StateRejected):
        StateCodec("another-key-0123456789").header(data)
    rotated = StateCodec("new-key-0123456789", previous_keys=[TEST_SIGNING_KEY])
    assert rotated.header(data) == {"presence": [1.0, 2.0, ""]}


def test_presence_round_trips_through_checkpoint_and_restore() -> None:
    codec = StateCodec(TEST_SIGNING_KEY)
    presence = _presence()
    first = _store(codec)
    state = _live(first, "m", partition=1)
    last = _report(presence, state, 10)
    presence.check(first, last + 100.0)  # fires: the open alert is part of the state
    changes = first.take_changes()
    assert [(m, p) for m, p, _ in changes] == [("m", 1)]
    restored = pickle.loads(pickle.dumps(state))
    assert restored.ops["presence"] == state.ops["presence"]
    second = _store(codec)
    for machine, partition, data in changes:
        second.install(machine, partition, data)
    assert dict(second.cold_headers("presence")) == {"m": (1, (last, 1.0, "warning"))}
    after = Presence(factor=5.0, min_silence_seconds=0.0, min_readings=5)
    after.hold([1], last + 200.0)
    assert after.check(second, last + 10_000.0) == []  # open already: no second firing
    assert after.silent == 1 and second.machines == 0  # counted without thawing
    live = second.machine("m", 1, last + 10_001.0)
    back = after.seen(live, T0 + 20_000.0, last + 10_001.0, ["temp"])
    assert back is not None and back.status == "resolved" and back.started_at == T0 + 9.0


def test_cold_machines_are_checked_from_the_index_and_only_the_silent_one_thawed() -> None:
    codec = StateCodec(TEST_SIGNING_KEY)
    presence = _presence(factor=5.0)
    store = _store(codec, idle_ttl=1.0)
    quiet = _live(store, "quiet")
    _report(presence, quiet, 10)
    busy = _live(store, "busy", partition=1)
    _report(presence, busy, 10, every=100.0)  # usual interval 100 s
    store.evict_idle(T0 + 10_000.0)
    assert store.machines == 0 and set(store.cold_headers("presence")) == {"quiet", "busy"}
    fired = presence.check(store, T0 + 1000.0)
    assert [m for m, _, _ in fired] == ["quiet"]
    assert store.restored == 1 and {m for m, _ in store.live_states()} == {"quiet"}
    store.evict_idle(T0 + 20_000.0)  # evicted again: the index now says the alert is open
    assert {m: h[2] for m, (_, h) in store.cold_headers("presence").items()} == {
        "quiet": "warning", "busy": ""}
    store.drop_partitions([0, 1])
    assert not store.cold_headers("presence")


def test_a_version_1_checkpoint_restores_without_presence() -> None:
    codec = StateCodec(TEST_SIGNING_KEY)
    old = MachineState()
    old.readings = 5
    store = _store(codec)
    store.install("m", 0, codec.dumps(old))
    assert not store.cold_headers("presence")
    assert store.machine("m", 0, T0).readings == 5


def test_checking_100000_cold_machines_is_cheap() -> None:
    """The cost the timer pays per check for a fleet that is not live (numbers in the report)."""
    codec = StateCodec(TEST_SIGNING_KEY)
    presence = _presence()
    template = MachineState()
    _report(presence, template, 10)
    data = codec.dumps(template, {"presence": template.ops["presence"]["header"]})
    store = _store(codec)
    started = time.perf_counter()
    for i in range(100_000):
        store.install(f"m{i:06d}", i % 8, data)
    installed = time.perf_counter() - started
    started = time.perf_counter()
    assert presence.check(store, T0 + 5.0) == []
    checked = time.perf_counter() - started
    print(f"100,000 cold machines: install {installed:.2f} s, one check {checked * 1000:.0f} ms")
    assert checked < 1.0


# ---------------------------------------------------------------- through the pipeline


def _reading(machine: str, ts: float, offset: int) -> FakeRecord:
    value = orjson.dumps({"machine_id": machine, "ts": ts, "sensors": {"temp": 20.0 + offset % 3}})
    return FakeRecord("telemetry", 0, offset, int(ts * 1000), machine.encode(), value)


def test_the_pipeline_publishes_a_valid_silent_alert_and_its_resolution() -> None:
    clock = FakeClock(T0)
    config = load_config(environ={}, overrides={
        "silence.factor": 3.0, "silence.min_silence_seconds": 0.0, "silence.min_readings": 5,
        "silence.check_interval_seconds": 1.0, "state.signing_key": TEST_SIGNING_KEY,
    })
    registry = CollectorRegistry()
    pipeline = Pipeline(config, metrics=Metrics(registry), clock=clock)
    for i in range(10):
        clock.now = T0 + i
        pipeline.process([_reading("press-07", T0 + i, i)])
    clock.now = T0 + 12.0  # 3 s = factor x 1 s after the last reading: not yet
    assert pipeline.timer_due()
    assert pipeline.process([]).alerts == []
    assert not pipeline.timer_due()
    clock.now = T0 + 14.0
    out = pipeline.process([])
    alert = validate_alert(out.alerts[0].value)
    assert (alert["kind"], alert["status"], alert["machine_id"]) == ("silent", "firing", "press-07")
    assert alert["detector"]["name"] == "presence" and [s["name"] for s in alert["sensors"]] == ["temp"]
    assert alert["detail"] == "no reading for 5 s (usual interval 1 s)"
    assert registry.get_sample_value("anomstream_machines_silent") == 1
    clock.now = T0 + 20.0
    out = pipeline.process([_reading("press-07", T0 + 20, 10)])
    back = validate_alert(out.alerts[0].value)
    assert (back["status"], back["alert_id"]) == ("resolved", alert["alert_id"])

"""State benchmark through a real broker (issue 4): checkpoint cost, restore time, 2 instances vs 1.

Three measurements, each service run in its own child process (like bench/e2e.py's roles), each
with a fresh group, alert/DLQ topics and changelog topic so no run restores another's state:

1. checkpoint cost: one service process (`anomstream.stream.app.serve`, what `anomstream run` runs) drains
   the same backlog of N simulated records with state checkpoints ON (default interval 5 s), OFF
   (`state.enabled=false`: offsets committed after every batch) and in exactly-once mode
   (`state.exactly_once=true`: one Kafka transaction per checkpoint), and ON with a 1 s interval
   (default backlog 300,000 records: ~10 s, so a drain spans several checkpoints). Readings/s is counted from
   the end of the first processed batch to the end of the last one (the first batch is excluded,
   so the group join and client start-up are not timed); the final checkpoint and close at stop
   are reported separately.
2. restore per 10,000 entities (entity = one sensor model): a `Pipeline` scores R readings per
   machine so every model has real state, the real `Checkpointer.write` sends every machine's
   signed state to a compacted changelog topic, then `Checkpointer.restore` reads it into a fresh
   `ModelStore` (fetch + install; timed) and the first reading of each machine thaws it
   (`ModelStore.machine`: HMAC-SHA256 verification + unpickle; timed, with the HMAC share measured
   separately). Two layouts: 2,000 machines x 5 sensors and 10,000 machines x 1 sensor.
3. 2 instances vs 1: a backlog of N records on a P-partition input topic, drained by one service
   process, then (same records, new topic) by two processes in one consumer group. Completion is
   seen in the group's committed offsets (exact end offsets come from the producer's partitioner,
   not `end_offsets()`, which Tansu 0.6 reports short); readings/s = records / (first batch done
   -> last batch done, over both processes).

Run: `.venv/bin/python bench/state.py` (starts an embedded Tansu) or `--bootstrap-servers HOST:PORT`;
`--only checkpoint,restore,scale` picks parts, `--repeats` the runs per figure (median reported).
Prints figures; never asserts on timings.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from typing import Any

import orjson


from _common import create_topics as _create  # bench/ is sys.path[0]: run as a script
from _common import produce as _produce
from _common import records as _records

SIGNING_KEY = "bench-state-signing-key-0123456789"  # throwaway: the broker is throwaway too
MODES = {
    "on": {"state.enabled": True},
    "off": {"state.enabled": False},
    "eos": {"state.enabled": True, "state.exactly_once": True},
    "on1": {"state.enabled": True, "state.checkpoint_interval_seconds": 1.0},
}
MODE_LABEL = {"on": "checkpoints ON (5 s)", "off": "state OFF", "eos": "exactly-once (5 s)", "on1": "checkpoints ON (1 s)"}


def _service_config(bootstrap: str, topic: str, group: str, mode: str, detector: str, partitions: int,
                    instance: str = "") -> Any:
    from anomstream.stream.config import load_config

    overrides: dict[str, Any] = {
        "kafka.bootstrap_servers": bootstrap, "kafka.input_topics": [topic], "kafka.group_id": group,
        "kafka.alert_topic": f"{topic}-alerts", "kafka.dlq_topic": f"{topic}-dlq",
        "kafka.session_timeout_ms": 6000, "kafka.heartbeat_interval_ms": 1000,
        "kafka.topic_partitions": partitions, "detector.name": detector,
        "http.host": "127.0.0.1", "http.port": 0, "service.instance": instance,
        "state.signing_key": SIGNING_KEY, "state.changelog_topic": f"{group}-state",
        "state.checkpoint_interval_seconds": 5.0,
    }
    overrides.update(MODES[mode])  # after the defaults above: "on1" overrides the interval
    return load_config(environ={}, overrides=overrides)


# ----------------------------------------------------------------------------- child: one service


def _run_service(args: argparse.Namespace) -> dict[str, Any]:
    """`anomstream run` (stream.app.serve) until `expected` records were processed or SIGTERM."""
    from anomstream.stream import signals

    signals.install()  # SIGTERM -> clean stop (final checkpoint + commit), as `anomstream run`
    from prometheus_client import CollectorRegistry

    from anomstream.stream.app import serve

    config = _service_config(args.bootstrap_servers, args.topic, args.group, args.mode, args.detector,
                             args.partitions, args.instance)
    assignments = [0]

    class _CountAssignments(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("partitions assigned"):
                assignments[0] += 1

    service_log = logging.getLogger("anomstream.stream.service")
    service_log.setLevel(logging.INFO)
    service_log.addHandler(_CountAssignments())
    stop = signals.STOP
    seen = {"count": 0, "first": None, "first_batch": 0, "last": None, "alerts": 0, "skipped": 0, "batches": 0}

    def on_output(out: Any) -> None:
        now = time.time()
        n = out.readings + out.skipped + len(out.dead_letters)
        if seen["first"] is None:
            seen["first"], seen["first_batch"] = now, n
        seen["count"] += n
        seen["skipped"] += out.skipped
        seen["alerts"] += len(out.alerts)
        seen["batches"] += 1
        seen["last"] = now
        if args.expected and seen["count"] >= args.expected or seen["first"] is not None and now - seen["first"] > args.seconds:
            stop.set()

    started = time.time()
    cpu0 = time.process_time()
    serve(config, stop=stop, registry=CollectorRegistry(), on_output=on_output)
    stopped = time.time()
    first, last = seen["first"] or started, seen["last"] or started
    timed = seen["count"] - seen["first_batch"]
    return {
        **seen, "mode": args.mode, "started": started, "stopped": stopped,
        "rate": timed / (last - first) if last > first else 0.0,
        "stop_seconds": stopped - last, "join_seconds": first - started,
        "cpu_seconds": time.process_time() - cpu0, "assignments": assignments[0],
    }


def _spawn(bootstrap: str, topic: str, group: str, mode: str, detector: str, partitions: int,
           expected: int, seconds: float, instance: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", "service", "--bootstrap-servers", bootstrap, "--topic", topic,
         "--group", group, "--mode", mode, "--detector", detector, "--partitions", str(partitions),
         "--expected", str(expected), "--seconds", str(seconds), "--instance", instance],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"service child failed (rc {proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _partition_ends(records: list[tuple[bytes, bytes]], partitions: int) -> dict[int, int]:
    """Exact end offset per partition of a fresh topic: count what the producer's partitioner sends."""
    from kafka.partitioner.default import (
        murmur2,  # what kafka-python's DefaultPartitioner uses for keys
    )

    return dict(sorted(Counter((murmur2(key) & 0x7FFFFFFF) % partitions for key, _ in records).items()))


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc), NaN when unknown."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


# ----------------------------------------------------------------------------- 1. checkpoint cost


def bench_checkpoint(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    records = _records(args.records, args.machines, seed=1)
    topic = f"bench-state-cp-{uuid.uuid4().hex[:6]}"
    _create(bootstrap, [topic], args.partitions)
    produce_s = _produce(bootstrap, topic, records)
    print(f"\n[1] checkpoint cost: {len(records):,} records ({args.machines} machines x 5 sensors, "
          f"{args.partitions} partitions) produced in {produce_s:.1f} s; detector {args.detector}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
    for rep in range(args.repeats):
        for mode in args.modes:  # interleaved, so drift in background load hits every mode alike
            group = f"bench-cp-{mode}-{uuid.uuid4().hex[:8]}"
            broker0 = _cpu_seconds(args.broker_pid)
            proc = _spawn(bootstrap, topic, group, mode, args.detector, args.partitions, len(records), args.max_seconds)
            r = _result(proc, args.max_seconds + 120)
            r["broker_cpu_seconds"] = _cpu_seconds(args.broker_pid) - broker0
            runs[mode].append(r)
            print(f"  run {rep + 1} {MODE_LABEL[mode]:<22} {r['rate']:>8,.0f} readings/s  ({r['count']:,} in "
                  f"{r['last'] - r['first']:.1f} s after the first batch; stop {r['stop_seconds']:.2f} s; "
                  f"cpu {r['cpu_seconds']:.1f} s, broker cpu {r['broker_cpu_seconds']:.1f} s; alerts {r['alerts']:,})",
                  flush=True)
    summary = {mode: _median([r["rate"] for r in rs]) for mode, rs in runs.items()}
    print("  median readings/s: " + "; ".join(
        f"{MODE_LABEL[m]} {summary[m]:,.0f} [{_spread([r['rate'] for r in runs[m]])}]" for m in runs))
    if "on" in summary and "off" in summary:
        print(f"  ON / OFF: {summary['on'] / summary['off']:.2f}")
    if "eos" in summary and "on" in summary:
        print(f"  exactly-once / ON: {summary['eos'] / summary['on']:.2f}")
    return {"runs": runs, "median": summary}


# ----------------------------------------------------------------------------- 2. restore


class _Rec:
    """What `Pipeline.process` needs of a kafka-python ConsumerRecord."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int, key: bytes, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.timestamp = topic, partition, offset, timestamp
        self.key, self.value, self.headers = key, value, None


def _restore_layout(bootstrap: str, args: argparse.Namespace, machines: int, sensors: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from anomstream.detectors.entities import ModelStore
    from anomstream.stream.checkpoint import Checkpointer, changelog_reader
    from anomstream.stream.kafka_io import ensure_topics, make_producer
    from anomstream.stream.metrics import Metrics
    from anomstream.stream.pipeline import Pipeline
    from anomstream.stream.simulator import Simulator
    from anomstream.stream.state_codec import codec_from_config

    group = f"bench-restore-{uuid.uuid4().hex[:8]}"
    config = _service_config(bootstrap, "telemetry", group, "on", args.detector, args.partitions)
    ensure_topics(config.kafka, [config.state.changelog_topic], compacted=[config.state.changelog_topic])

    # R readings per machine: the simulator's 50 machine profiles, reused round-robin, renamed.
    base = Simulator(machines=50, seed=2, fault_rate=0.0)
    steps: list[list[dict[str, Any]]] = [[] for _ in range(args.restore_readings)]
    for i, reading in enumerate(base.readings(50 * args.restore_readings)):
        steps[i // 50].append(reading.record)
    names = [f"m{k:05d}" for k in range(machines)]
    partition_of = {m: zlib.crc32(m.encode()) % args.partitions for m in names}
    offsets = [0] * args.partitions
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()))
    fed = 0
    t0 = time.perf_counter()
    now_ms = int(time.time() * 1000)
    for step in steps:
        batch = []
        for k, name in enumerate(names):
            src = step[k % 50]
            sensors_doc = dict(list(src["sensors"].items())[:sensors])
            value = orjson.dumps({"machine_id": name, "ts": src["ts"], "sensors": sensors_doc})
            p = partition_of[name]
            batch.append(_Rec("telemetry", p, offsets[p], now_ms, name.encode(), value))
            offsets[p] += 1
        for i in range(0, len(batch), 2000):
            pipeline.process(batch[i : i + 2000])
        fed += len(batch)
    feed_s = time.perf_counter() - t0
    entities = len(pipeline.models)
    assert entities == machines * sensors, (entities, machines, sensors)

    metrics = Metrics(CollectorRegistry())
    producer = make_producer(config.kafka)
    writer = Checkpointer(config, store=pipeline.models, producer=producer, metrics=metrics,
                          reader_factory=changelog_reader(config))
    changes_sizes: list[int] = []
    real_take = pipeline.models.take_changes

    def take(partitions: Any = None) -> list[tuple[str, int, bytes]]:
        changes = real_take(partitions)
        changes_sizes.extend(len(data) for _, _, data in changes)
        return changes

    pipeline.models.take_changes = take  # type: ignore[method-assign]  # only to see the sizes
    t0 = time.perf_counter()
    written = writer.write()
    write_s = time.perf_counter() - t0
    producer.close()

    codec = codec_from_config(config.state)
    reads, thaws, hmacs = [], [], []
    for _ in range(args.repeats):
        store = ModelStore.from_config(config.detector, codec=codec)
        restorer = Checkpointer(config, store=store, producer=None, metrics=Metrics(CollectorRegistry()),  # type: ignore[arg-type]
                                reader_factory=changelog_reader(config))
        t0 = time.perf_counter()
        restored = restorer.restore(range(args.partitions))
        reads.append(time.perf_counter() - t0)
        cold = [store._cold[m][1] for m in names]  # the signed bytes, to time the HMAC alone
        t0 = time.perf_counter()
        for data in cold:
            hmac.new(SIGNING_KEY.encode(), data[:1] + data[33:], hashlib.sha256).digest()
        hmacs.append(time.perf_counter() - t0)
        now = time.time()
        t0 = time.perf_counter()
        for name in names:
            store.machine(name, partition_of[name], now)
        thaws.append(time.perf_counter() - t0)
        assert restored == machines and store.restored == machines and store.rejected == 0, (
            restored, store.restored, store.rejected)
        assert len(store) == entities
    per = 10_000 / entities
    result = {
        "layout": f"{machines:,} machines x {sensors} sensor{'s' if sensors > 1 else ''}",
        "entities": entities, "readings_per_machine": args.restore_readings, "fed": fed, "feed_s": feed_s,
        "written": written, "write_s": write_s,
        "bytes_per_machine": statistics.mean(changes_sizes), "bytes_total": sum(changes_sizes),
        "read_s": reads, "thaw_s": thaws, "hmac_s": hmacs,
        "read_per_10k": _median(reads) * per, "thaw_per_10k": _median(thaws) * per,
        "hmac_per_10k": _median(hmacs) * per, "write_per_10k": write_s * per,
        "bytes_per_10k": sum(changes_sizes) * per,
    }
    print(f"  {result['layout']} ({entities:,} entities, {args.restore_readings} readings each, "
          f"fed in {feed_s:.1f} s): checkpoint write {write_s:.2f} s for {written:,} records, "
          f"{result['bytes_per_machine']:,.0f} B per machine state ({result['bytes_total'] / 1e6:.2f} MB)")
    print(f"    restore (fetch + install) s: {_spread(reads, '{:.3f}')}; thaw (verify + unpickle) s: "
          f"{_spread(thaws, '{:.3f}')}; of which HMAC s: {_spread(hmacs, '{:.3f}')}", flush=True)
    return result


def bench_restore(bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    print(f"\n[2] restore: detector {args.detector}, changelog with {args.partitions} partitions", flush=True)
    out = []
    for layout in args.layouts.split(","):
        machines, sensors = (int(x) for x in layout.split("x"))
        out.append(_restore_layout(bootstrap, args, machines, sensors))
    return out


# ----------------------------------------------------------------------------- 3. scale-out


def _committed(admin: Any, group: str) -> int:
    try:
        offsets = admin.list_group_offsets(group)
    except Exception:  # noqa: BLE001  (group not known yet: nothing committed)
        return 0
    return sum(meta.offset for meta in offsets.get(group, {}).values() if meta.offset and meta.offset > 0)


def _drain_group(bootstrap: str, args: argparse.Namespace, records: list[tuple[bytes, bytes]], instances: int) -> dict[str, Any]:
    from kafka import KafkaAdminClient

    topic = f"bench-state-scale-{instances}-{uuid.uuid4().hex[:6]}"
    _create(bootstrap, [topic], args.scale_partitions)
    _produce(bootstrap, topic, records)
    ends = _partition_ends(records, args.scale_partitions)
    total = sum(ends.values())
    group = f"bench-scale-{instances}-{uuid.uuid4().hex[:8]}"
    broker0 = _cpu_seconds(args.broker_pid)
    procs = [_spawn(bootstrap, topic, group, "on", args.detector, args.scale_partitions, 0, 10 * args.max_seconds,
                    instance=f"i{i}") for i in range(instances)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    deadline = time.time() + 60 + 3 * args.max_seconds
    try:
        while time.time() < deadline and _committed(admin, group) < total:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
        committed = _committed(admin, group)
    finally:
        admin.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
    results = [_result(p, 60) for p in procs]
    broker_cpu = _cpu_seconds(args.broker_pid) - broker0
    started = [r for r in results if r["first"] is not None]
    first = min(r["first"] for r in started)
    last = max(r["last"] for r in started)
    earliest = min(started, key=lambda r: r["first"])
    rate = (total - earliest["first_batch"]) / (last - first)
    return {
        "instances": instances, "total": total, "per_partition": ends, "committed": committed, "rate": rate, "seconds": last - first,
        "broker_cpu_seconds": broker_cpu,
        "per_process": [{"count": r["count"], "skipped": r["skipped"], "assignments": r["assignments"],
                         "cpu_seconds": r["cpu_seconds"], "busy_seconds": r["last"] - r["first"]} for r in results],
    }


def bench_scale(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    records = _records(args.scale_records, args.machines, seed=3)
    print(f"\n[3] 2 instances vs 1: {len(records):,} records ({args.machines} machines x 5 sensors) on "
          f"{args.scale_partitions} partitions, checkpoints ON; {os.cpu_count()} CPUs", flush=True)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for rep in range(args.repeats):
        for n in (1, 2):
            r = _drain_group(bootstrap, args, records, n)
            runs[n].append(r)
            procs = "; ".join(f"{p['count']:,} read ({p['skipped']:,} re-read), {p['assignments']} assignment(s), "
                              f"cpu {p['cpu_seconds']:.1f} s" for p in r["per_process"])
            print(f"  run {rep + 1} {n} instance{'s' if n > 1 else ' '} {r['rate']:>8,.0f} readings/s "
                  f"({r['total']:,} in {r['seconds']:.1f} s; per partition {list(r['per_partition'].values())}; "
                  f"committed {r['committed']:,}; broker cpu {r['broker_cpu_seconds']:.1f} s) | {procs}", flush=True)
    med = {n: _median([r["rate"] for r in rs]) for n, rs in runs.items()}
    print(f"  median: 1 instance {med[1]:,.0f} [{_spread([r['rate'] for r in runs[1]])}], "
          f"2 instances {med[2]:,.0f} [{_spread([r['rate'] for r in runs[2]])}]; ratio {med[2] / med[1]:.2f}")
    return {"runs": runs, "median": med}


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--only", default="checkpoint,restore,scale", help="parts to run (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--detector", default="ewm-zscore")
    parser.add_argument("--records", type=int, default=300_000,
                        help="checkpoint-cost backlog (default 300,000: the drain spans a few 5 s checkpoints)")
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--checkpoint-modes", dest="modes_arg", default="on,off,eos,on1",
                        help="on (5 s interval), off, eos (exactly-once), on1 (1 s interval)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time box per drain")
    parser.add_argument("--layouts", default="2000x5,10000x1", help="restore layouts, MACHINESxSENSORS")
    parser.add_argument("--restore-readings", type=int, default=160,
                        help="readings per machine before the checkpoint (default 160: past the 150 warm-up)")
    parser.add_argument("--scale-records", type=int, default=300_000)
    parser.add_argument("--scale-partitions", type=int, default=2)
    parser.add_argument("--json", help="also write all results to this file")
    # child-process role
    parser.add_argument("--role", choices=["service"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--instance", default="", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(_run_service(args)))
        return 0
    args.modes = args.modes_arg.split(",")

    from contextlib import ExitStack

    from anomstream.stream.broker import EmbeddedBroker

    parts = args.only.split(",")
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        args.broker_pid = None
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap_servers
            args.broker_pid = broker._process.pid if broker._process is not None else None  # for its CPU time
        print(f"broker {bootstrap}; {os.cpu_count()} CPUs; {args.repeats} run(s) per figure", flush=True)
        if "checkpoint" in parts:
            results["checkpoint"] = bench_checkpoint(bootstrap, args)
        if "restore" in parts:
            results["restore"] = bench_restore(bootstrap, args)
        if "scale" in parts:
            results["scale"] = bench_scale(bootstrap, args)
    if "restore" in results:
        print("\nrestore per 10,000 entities (median): " + "; ".join(
            f"{r['layout']}: fetch+install {r['read_per_10k']:.3f} s, thaw {r['thaw_per_10k']:.3f} s "
            f"(HMAC {r['hmac_per_10k'] * 1000:.1f} ms), {r['bytes_per_machine']:,.0f} B/machine, "
            f"{r['bytes_per_10k'] / 1e6:.2f} MB, full checkpoint write {r['write_per_10k']:.2f} s"
            for r in results["restore"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())

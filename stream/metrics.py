"""Every Prometheus metric anomstream exports, defined in one place, registry injected.

Names carry base units and suffixes (`_seconds`, `_total`, `_info`); labels stay
low-cardinality, except the deliberate `machine` label of the firing-alert gauge (one series
per machine with an open alert, removed when it resolves).

Per-reading values (end-to-end latency, anomaly scores) arrive a batch at a time, so they go
into `BatchHistogram`, which bins a whole numpy array in one `searchsorted` call instead of
thousands of `Histogram.observe` calls on the hot path.

What describes the fleet of models (their age, how many are in warm-up) is not a per-reading
value: `ModelCensus` asks for it when Prometheus scrapes, so the hot path pays nothing and the
series stay aggregate however many machines there are (per-machine detail: `GET /machines/{id}`).
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from anomstream import __version__

__all__ = [
    "ALERT_KINDS", "CENSUS_INTERVAL", "LATENCY_BUCKETS", "MODEL_AGE_BUCKETS", "SCORE_BUCKETS",
    "BatchHistogram", "Census", "Metrics", "ModelCensus",
]

# Every `kind` an alert can have (config/schemas/alert-v1.json).
ALERT_KINDS = ("anomaly", "stuck", "flatline", "railed", "gap", "out_of_range", "silent")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCORE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0)
# Readings learned per model: the default warm-up (150) is a bound, so "still warming up" and
# "just warm" are separate buckets; a 1 s sensor reaches 86,400 in a day, 2.6 M in a month.
MODEL_AGE_BUCKETS = (
    0, 10, 50, 150, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000, 10_000_000,
)
CENSUS_INTERVAL = 5.0  # seconds a model census is served again: the compose stack's scrape interval
# What a census source returns: every live model's readings learned, and how many of them are
# still in warm-up.
Census = tuple[np.ndarray, int]


def _binned(bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts per bucket (last: above every bound); side="left": a value equal to a bound
    belongs in that bound's bucket (le = "<=")."""
    return np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)


def _histogram(
    name: str, documentation: str, bounds: np.ndarray, counts: np.ndarray, total: float
) -> HistogramMetricFamily:
    cumulative = np.cumsum(counts)
    buckets = [(repr(float(b)), int(c)) for b, c in zip(bounds, cumulative[:-1])]
    buckets.append(("+Inf", int(cumulative[-1])))
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], buckets, total)
    return family


class BatchHistogram(Collector):
    """An unlabelled histogram fed with arrays; exposes the standard `_bucket/_sum/_count`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.asarray(buckets, dtype=float)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()  # the HTTP thread reads while the pipeline writes
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: np.ndarray | Sequence[float]) -> None:
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            return
        binned = _binned(self._bounds, arr)
        with self._lock:
            self._counts += binned
            self._sum += float(arr.sum())

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self._lock:
            counts = self._counts.copy()
            total_sum = self._sum
        yield _histogram(self.name, self.documentation, self._bounds, counts, total_sum)

    def describe(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


class ModelCensus(Collector):
    """The live models' age (readings learned) as a histogram, and the models in warm-up as a
    gauge, counted at scrape time from a `source` bound once the pipeline exists.

    A gauge histogram of *now*, not a history: each census counts the models held at that
    moment (`histogram_quantile` over `_bucket` without `rate`). Counting costs one pass over
    the live models under the pipeline's lock (about 45 ms per 100,000 models, measured in
    docs/operations/drilldown.md), never anything per batch; a census younger than
    `min_interval` seconds is served again, so several Prometheus servers scraping one
    instance cost one census. Before `bind`, and when the source cannot answer (the pipeline
    busy for longer than its lock timeout), the last census is served too.
    """

    AGE = "anomstream_model_age_readings"
    WARMING = "anomstream_models_warming_up"

    def __init__(
        self,
        registry: CollectorRegistry | None,
        *,
        min_interval: float = CENSUS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._bounds = np.asarray(MODEL_AGE_BUCKETS, dtype=float)
        self._source: Callable[[], Census | None] | None = None
        self._last: Census = (np.zeros(0, dtype=np.int64), 0)
        self._taken = -math.inf  # when `_last` was counted
        self._lock = threading.Lock()  # two scrapes at once: one census, not two
        if registry is not None:
            registry.register(self)

    def bind(self, source: Callable[[], Census | None] | None) -> None:
        """Count from `source` (None: stop, e.g. when its pipeline is gone)."""
        with self._lock:
            self._source = source
            self._taken = -math.inf

    def census(self) -> Census:
        with self._lock:
            now = self._clock()
            if self._source is not None and now - self._taken >= self.min_interval:
                fresh = self._source()
                if fresh is not None:
                    self._last, self._taken = fresh, now
            return self._last

    def collect(self) -> Iterable[HistogramMetricFamily | GaugeMetricFamily]:
        ages, warming = self.census()
        values = np.asarray(ages, dtype=float)
        yield _histogram(
            self.AGE, "Readings learned per live model, counted at scrape time (gauge histogram)",
            self._bounds, _binned(self._bounds, values), float(values.sum()),
        )
        yield GaugeMetricFamily(self.WARMING, "Live models still in warm-up (not scoring yet)", warming)

    def describe(self) -> Iterable[HistogramMetricFamily | GaugeMetricFamily]:
        yield HistogramMetricFamily(self.AGE, "")
        yield GaugeMetricFamily(self.WARMING, "")


class Metrics:
    """The metric objects of one anomstream process. Tests pass a fresh `CollectorRegistry()`."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        r = registry
        p = "anomstream_"
        self.readings_consumed = Counter(
            p + "readings_consumed", "Telemetry records read from Kafka", ["topic"], registry=r
        )
        self.readings_rejected = Counter(
            p + "readings_rejected",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.readings_scored = Counter(
            p + "readings_scored", "Sensor values scored by a model (after warm-up)", registry=r
        )
        self.alerts = Counter(
            p + "alerts", "Alerts published, by kind, severity and status", ["kind", "severity", "status"],
            registry=r,
        )
        # One series per machine *with an open alert* (removed when it resolves): bounded by the
        # open alerts, not by the fleet; Alertmanager pages per machine from it.
        self.alerts_firing = Gauge(
            p + "alerts_firing",
            "Open (firing) alerts of a machine, by kind and severity; absent when none",
            ["machine", "kind", "severity"],
            registry=r,
        )
        self.alerts_open = Gauge(
            p + "alerts_open", "Open alerts over all machines, by kind and severity",
            ["kind", "severity"], registry=r,
        )
        self.alerts_suppressed = Counter(
            p + "alerts_suppressed",
            "Alerts not published because their machine was in maintenance or a paused mode, by kind",
            ["kind"], registry=r,
        )
        self.feedback = Counter(
            p + "feedback",
            "Operator feedback messages, by action and result (applied, recorded, duplicate, "
            "too_late, no_snapshot, unknown_machine, unknown_alert)",
            ["action", "result"], registry=r,
        )
        self.control = Counter(
            p + "control_messages",
            "Mode and maintenance messages from the control topic, by result "
            "(applied, duplicate, expired, rejected)",
            ["result"], registry=r,
        )
        self.machines_in_mode = Gauge(
            p + "machines_in_mode",
            "Live machines by operating mode (maintenance included; default: production)",
            ["mode"], registry=r,
        )
        self.machines_silent = Gauge(
            p + "machines_silent",
            "Machines with an open silent alert (reporting nothing for longer than usual)",
            registry=r,
        )
        self.end_to_end_latency = BatchHistogram(
            p + "end_to_end_latency_seconds",
            "Kafka record timestamp to alert decision, per reading",
            LATENCY_BUCKETS,
            r,
        )
        self.anomaly_score = BatchHistogram(
            p + "anomaly_score",
            "Calibrated machine anomaly score per reading, after warm-up (0..1)",
            SCORE_BUCKETS,
            r,
        )
        self.sensor_score = BatchHistogram(
            p + "sensor_score",
            "Calibrated per-sensor anomaly score per scored sensor value, after warm-up (0..1)",
            SCORE_BUCKETS,
            r,
        )
        self.model_census = ModelCensus(r)
        self.batch_processing = Histogram(
            p + "batch_processing_seconds",
            "Time to decode, score and decide one polled batch (excluding Kafka I/O)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            p + "batch_size_records",
            "Records per polled batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            p + "consumer_lag_records",
            "Records between the committed position and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.partitions_assigned = Gauge(
            p + "partitions_assigned", "Input partitions assigned to this instance", registry=r
        )
        self.active_models = Gauge(
            p + "active_models", "Per-entity detector models held in memory", registry=r
        )
        self.models_created = Counter(
            p + "models_created", "Per-entity models created on first sight", registry=r
        )
        self.models_evicted = Counter(
            p + "models_evicted", "Per-entity models evicted by the entity cap", registry=r
        )
        self.state_restored = Counter(
            p + "state_restored", "Machines whose state was restored from a checkpoint", registry=r
        )
        self.state_rejected = Counter(
            p + "state_rejected",
            "Checkpointed machine states that failed signature verification (never unpickled)",
            registry=r,
        )
        self.checkpoints = Counter(p + "checkpoints", "Checkpoints written", registry=r)
        self.checkpoint_records = Counter(
            p + "checkpoint_records", "Machine states written to the changelog", registry=r
        )
        self.checkpoint_bytes = Counter(
            p + "checkpoint_bytes", "Bytes of signed state written to the changelog", registry=r
        )
        self.state_too_large = Counter(
            p + "state_too_large",
            "Machine states not checkpointed because one record would exceed Kafka's size limit",
            registry=r,
        )
        self.checkpoint_duration = Histogram(
            p + "checkpoint_duration_seconds",
            "Time to serialize, write and acknowledge one checkpoint",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.last_checkpoint_timestamp = Gauge(
            p + "last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint", registry=r
        )
        self.restore_duration = Histogram(
            p + "restore_duration_seconds",
            "Time to restore the state of newly assigned partitions from the changelog",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.restore_records = Counter(
            p + "restore_records", "Changelog records read while restoring", registry=r
        )
        self.restoring = Gauge(p + "restoring", "1 while restoring state (not ready)", registry=r)
        self.commits = Counter(p + "offset_commits", "Successful offset commits", registry=r)
        self.delivery_failures = Counter(
            p + "delivery_failures",
            "Alert or dead-letter messages the broker did not acknowledge",
            ["topic_kind"],
            registry=r,
        )
        self.ready = Gauge(p + "ready", "1 when /readyz would answer 200", registry=r)
        # Broker connectivity (broker-outage handling, see `anomstream.stream.readiness`).
        self.broker_connected = Gauge(
            p + "broker_connected",
            "1 while the consumer holds an open connection to the Kafka cluster",
            registry=r,
        )
        self.broker_disconnects = Counter(
            p + "broker_disconnects", "Times the Kafka cluster became unreachable", registry=r
        )
        self.last_commit_timestamp = Gauge(
            p + "last_commit_timestamp_seconds", "Unix time of the last offset commit", registry=r
        )
        # Records whose processing raised (a bug): each also went to the dead-letter topic with
        # reason internal_error. `type` is the exception class name (a handful at most).
        self.internal_errors = Counter(
            p + "internal_errors",
            "Records whose processing raised an unexpected exception, by exception type",
            ["type"],
            registry=r,
        )
        self.build_info = Info(p + "build", "anomstream build information", registry=r)
        self.build_info.info(_build_labels())
        self._initialise_label_values()

    def _initialise_label_values(self) -> None:
        """Create every known label combination at 0, so rate()/increase() see the first event."""
        from anomstream.stream.telemetry import REASONS

        for reason in REASONS:
            self.readings_rejected.labels(reason)
        for kind in ALERT_KINDS:
            for severity in ("warning", "critical"):
                self.alerts_open.labels(kind, severity)
                for status in ("firing", "resolved"):
                    self.alerts.labels(kind, severity, status)
            self.alerts_suppressed.labels(kind)
        for kind in ("alert_or_dlq", "checkpoint"):
            self.delivery_failures.labels(kind)


def _build_labels() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def dist_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {
        "version": __version__,
        "python": platform.python_version(),
        "river": dist_version("river"),
        "kafka_python": dist_version("kafka-python"),
    }

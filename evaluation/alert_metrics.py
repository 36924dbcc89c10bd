"""Alert-level detection metrics: what users receive (firing/resolved alerts) against labels.

Pure functions over one stream (one machine, one replayed file): the per-row event times, the
alert documents of that stream (`anomstream.alert/v1`, as the service publishes them) and the
labels, per row or as episodes of rows. An alert covers the rows from its `firing` document's
row up to, not including, its `resolved` document's row, or to the end of the stream if it never
resolves. In replay a document's row is its `source.offset`; alerts of the live service carry
Kafka offsets, so for those locate rows by `event_time` instead (`locate="event_time"`).

Counts are kept apart from the rates derived from them, so files add up (`combine`): a total
over files is computed from summed counts, not averaged rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

__all__ = [
    "AlertCounts",
    "AlertInterval",
    "AlertMetrics",
    "Episode",
    "EpisodeResult",
    "alert_intervals",
    "combine",
    "episodes_from_labels",
    "evaluate_alerts",
    "labels_from_episodes",
]

Locate = Literal["offset", "event_time"]


@dataclass(frozen=True)
class Episode:
    """Labelled anomalous rows `start`..`end`, both inclusive."""

    start: int
    end: int


@dataclass(frozen=True)
class AlertInterval:
    """Rows covered by one alert: `start` (its firing row) to `end` (exclusive): its resolved
    row, or the stream's length if it never resolved (`resolved` False)."""

    alert_id: str
    start: int
    end: int
    resolved: bool
    sensors: tuple[str, ...] = ()


@dataclass(frozen=True)
class EpisodeResult:
    """How the alerts met one episode.

    `delay_rows`/`delay_seconds`: from the episode's first row to the first alert that fires
    inside the episode or is already open when it starts (0 then); None if no alert did.
    `resolution_rows`: from the episode's last row to the row of the `resolved` document of the
    last alert overlapping the episode (negative: it resolved before the episode ended); None if
    no alert overlaps the episode or that alert never resolves.
    """

    start: int
    end: int
    detected: bool
    delay_rows: int | None
    delay_seconds: float | None
    alert_id: str | None
    resolution_rows: int | None


@dataclass(frozen=True)
class AlertCounts:
    """Additive counts of one stream (or a sum over streams)."""

    rows: int = 0
    anomalous_rows: int = 0
    tp_rows: int = 0  # anomalous rows inside an alert
    fp_rows: int = 0  # clean rows inside an alert
    alerts: int = 0  # firing alerts scored
    false_alerts: int = 0  # fired on a clean row, overlap no anomalous row
    clean_seconds: float = 0.0
    clean_seconds_in_alert: float = 0.0

    @property
    def clean_rows(self) -> int:
        return self.rows - self.anomalous_rows

    @property
    def fn_rows(self) -> int:
        return self.anomalous_rows - self.tp_rows

    def __add__(self, other: AlertCounts) -> AlertCounts:
        return AlertCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _ratio(numerator: float, denominator: float) -> float | None:
    """None when undefined (0/0): e.g. precision with no row inside an alert."""
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class AlertMetrics:
    """Counts and per-episode results of one stream or several; the rates are derived."""

    counts: AlertCounts
    episodes: tuple[EpisodeResult, ...]

    @property
    def precision(self) -> float | None:
        return _ratio(self.counts.tp_rows, self.counts.tp_rows + self.counts.fp_rows)

    @property
    def recall(self) -> float | None:
        return _ratio(self.counts.tp_rows, self.counts.anomalous_rows)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarm_rate(self) -> float | None:
        """Share of clean rows inside an alert."""
        return _ratio(self.counts.fp_rows, self.counts.clean_rows)

    @property
    def missed_alarm_rate(self) -> float | None:
        """Share of anomalous rows outside every alert."""
        return _ratio(self.counts.fn_rows, self.counts.anomalous_rows)

    @property
    def false_alerts_per_10k(self) -> float | None:
        """False alerts per 10,000 clean readings."""
        r = _ratio(self.counts.false_alerts, self.counts.clean_rows)
        return None if r is None else 10_000 * r

    @property
    def clean_time_in_alert(self) -> float | None:
        """Share of clean time (not rows: steps may be uneven) inside an alert."""
        return _ratio(self.counts.clean_seconds_in_alert, self.counts.clean_seconds)

    @property
    def detected_episodes(self) -> int:
        return sum(e.detected for e in self.episodes)

    @property
    def mean_delay_rows(self) -> float | None:
        """Mean delay of the detected episodes, in rows."""
        delays = [e.delay_rows for e in self.episodes if e.delay_rows is not None]
        return float(np.mean(delays)) if delays else None

    @property
    def mean_delay_seconds(self) -> float | None:
        delays = [e.delay_seconds for e in self.episodes if e.delay_seconds is not None]
        return float(np.mean(delays)) if delays else None

    @property
    def max_resolution_rows(self) -> int | None:
        """The slowest resolution among the detected episodes whose alert resolves."""
        rows = [e.resolution_rows for e in self.episodes if e.resolution_rows is not None]
        return max(rows) if rows else None

    @property
    def unresolved_episodes(self) -> int:
        """Detected episodes whose last alert never resolves."""
        return sum(e.detected and e.resolution_rows is None for e in self.episodes)

    def to_dict(self) -> dict[str, Any]:
        counts = asdict(self.counts)
        counts.update(clean_rows=self.counts.clean_rows, fn_rows=self.counts.fn_rows)
        derived = (
            "precision", "recall", "f1", "false_alarm_rate", "missed_alarm_rate",
            "false_alerts_per_10k", "clean_time_in_alert", "detected_episodes",
            "mean_delay_rows", "mean_delay_seconds", "max_resolution_rows", "unresolved_episodes",
        )  # fmt: skip
        return {
            "counts": counts,
            **{name: getattr(self, name) for name in derived},
            "episodes": [asdict(e) for e in self.episodes],
        }


def combine(metrics: Iterable[AlertMetrics]) -> AlertMetrics:
    """The total over several streams: counts summed, episodes listed one after another."""
    counts, episodes = AlertCounts(), list[EpisodeResult]()
    for m in metrics:
        counts += m.counts
        episodes.extend(m.episodes)
    return AlertMetrics(counts, tuple(episodes))


# ------------------------------------------------------------------------------- labels


def episodes_from_labels(labels: np.ndarray | Sequence[bool]) -> list[Episode]:
    """Maximal runs of True as episodes.

    >>> episodes_from_labels([False, True, True, False, True])
    [Episode(start=1, end=2), Episode(start=4, end=4)]
    """
    mask = np.asarray(labels, dtype=bool)
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [Episode(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def labels_from_episodes(episodes: Iterable[Episode | tuple[int, int]], rows: int) -> np.ndarray:
    """Boolean row labels from episodes (inclusive ends; overlapping episodes are merged).

    >>> labels_from_episodes([(1, 2), (2, 3)], 5).tolist()
    [False, True, True, True, False]
    """
    mask = np.zeros(rows, dtype=bool)
    for episode in _as_episodes(episodes):
        if not 0 <= episode.start <= episode.end < rows:
            raise ValueError(f"episode {episode.start}..{episode.end} is not inside rows 0..{rows - 1}")
        mask[episode.start : episode.end + 1] = True
    return mask


def _as_episodes(episodes: Iterable[Episode | tuple[int, int]]) -> list[Episode]:
    return [e if isinstance(e, Episode) else Episode(int(e[0]), int(e[1])) for e in episodes]


# ------------------------------------------------------------------------------- alerts


def _epoch(rfc3339: str) -> float:
    moment = datetime.fromisoformat(rfc3339)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _row_of(alert: Mapping[str, Any], event_times: np.ndarray, locate: Locate) -> int:
    if locate == "offset":
        row = int(alert["source"]["offset"])
    else:  # the first row at or after the alert's event time
        row = int(np.searchsorted(event_times, _epoch(alert["event_time"]) - 1e-6))
    if not 0 <= row < len(event_times):
        raise ValueError(
            f"alert {alert.get('alert_id')} ({alert.get('status')}) is at row {row}, "
            f"outside the stream's {len(event_times)} rows"
        )
    return row


def alert_intervals(
    alerts: Iterable[Mapping[str, Any]], event_times: np.ndarray, locate: Locate = "offset"
) -> list[AlertInterval]:
    """Pair each firing document with the resolved one of the same `alert_id`, in row order.

    >>> t = np.arange(6.0)
    >>> docs = [{"alert_id": "a", "status": "firing", "source": {"offset": 1}},
    ...         {"alert_id": "a", "status": "resolved", "source": {"offset": 3}},
    ...         {"alert_id": "b", "status": "firing", "source": {"offset": 4}}]
    >>> [(i.alert_id, i.start, i.end, i.resolved) for i in alert_intervals(docs, t)]
    [('a', 1, 3, True), ('b', 4, 6, False)]
    """
    fired: dict[str, tuple[int, tuple[str, ...]]] = {}
    resolved: dict[str, int] = {}
    for alert in alerts:
        ident, status = alert["alert_id"], alert["status"]
        row = _row_of(alert, event_times, locate)
        if status == "firing":
            sensors = tuple(s["name"] for s in alert.get("sensors", ()))
            fired.setdefault(ident, (row, sensors))  # a re-published firing keeps the first
        elif status == "resolved":
            resolved.setdefault(ident, row)
        else:
            raise ValueError(f"alert {ident}: status {status!r} is neither firing nor resolved")
    orphans = sorted(set(resolved) - set(fired))
    if orphans:
        raise ValueError(f"alert {orphans[0]} is resolved at row {resolved[orphans[0]]} but never fired")
    out = []
    for ident, (start, sensors) in fired.items():
        end = resolved.get(ident)
        if end is not None and end < start:
            raise ValueError(f"alert {ident} resolves at row {end}, before it fires at row {start}")
        out.append(AlertInterval(ident, start, len(event_times) if end is None else end,
                                 end is not None, sensors))  # fmt: skip
    return sorted(out, key=lambda i: (i.start, i.alert_id))


# ------------------------------------------------------------------------------- metrics


def _row_seconds(event_times: np.ndarray) -> np.ndarray:
    """Time each row stands for: until the next row; the last row gets the median step."""
    if len(event_times) < 2:
        return np.ones(len(event_times))
    steps = np.diff(event_times)
    return np.append(steps, np.median(steps))


def evaluate_alerts(
    event_times: np.ndarray,
    alerts: Iterable[Mapping[str, Any]],
    labels: np.ndarray | Sequence[bool] | None = None,
    *,
    episodes: Iterable[Episode | tuple[int, int]] | None = None,
    scored_from: int = 0,
    locate: Locate = "offset",
) -> AlertMetrics:
    """Alert-level metrics of one stream, over rows `scored_from`.. (earlier rows, e.g. the
    history a model learns from, are left out; an alert open across that row still counts).

    Give the labels as a boolean per row or as `episodes` (inclusive row ranges; they may
    overlap: each is judged on its own, the rows count once).

    >>> t = np.arange(10.0) * 60
    >>> docs = [{"alert_id": "a", "status": "firing", "event_time": "", "source": {"offset": 3}},
    ...         {"alert_id": "a", "status": "resolved", "event_time": "", "source": {"offset": 7}}]
    >>> m = evaluate_alerts(t, docs, episodes=[(2, 5)])
    >>> m.precision, m.recall, m.false_alarm_rate, m.episodes[0].delay_seconds
    (0.75, 0.75, 0.16666666666666666, 60.0)
    >>> m.episodes[0].resolution_rows
    2
    """
    times = np.asarray(event_times, dtype=float)
    rows = len(times)
    if (labels is None) == (episodes is None):
        raise ValueError("give the labels either per row or as episodes, not both or neither")
    if labels is not None:
        mask = np.asarray(labels, dtype=bool)
        if len(mask) != rows:
            raise ValueError(f"{len(mask)} labels for {rows} rows")
        listed = episodes_from_labels(mask)
    else:
        listed = _as_episodes(episodes or ())
        mask = labels_from_episodes(listed, rows)
    if not 0 <= scored_from <= rows:
        raise ValueError(f"scored_from {scored_from} is not in 0..{rows}")
    intervals = alert_intervals(alerts, times, locate)
    in_alert = np.zeros(rows, dtype=bool)
    for interval in intervals:
        in_alert[interval.start : interval.end] = True
    scored = slice(scored_from, rows)
    label, alerted, seconds = mask[scored], in_alert[scored], _row_seconds(times)[scored]
    clean = ~label
    firing = [i for i in intervals if i.start >= scored_from]
    false_alerts = sum(
        not mask[i.start] and not mask[i.start : i.end].any() for i in firing
    )
    counts = AlertCounts(
        rows=int(label.size),
        anomalous_rows=int(label.sum()),
        tp_rows=int((label & alerted).sum()),
        fp_rows=int((clean & alerted).sum()),
        alerts=len(firing),
        false_alerts=int(false_alerts),
        clean_seconds=float(seconds[clean].sum()),
        clean_seconds_in_alert=float(seconds[clean & alerted].sum()),
    )
    results = tuple(
        _episode_result(e, intervals, times) for e in listed if e.end >= scored_from
    )
    return AlertMetrics(counts, results)


def _episode_result(
    episode: Episode, intervals: list[AlertInterval], times: np.ndarray
) -> EpisodeResult:
    s, e = episode.start, episode.end
    catching = [i for i in intervals if i.start <= e and i.end > s]  # overlap the episode
    if not catching:
        return EpisodeResult(s, e, False, None, None, None, None)
    first, last = catching[0], catching[-1]  # intervals are in start order
    hit = max(first.start, s)
    resolution = last.end - e if last.resolved else None
    return EpisodeResult(
        s, e, True, hit - s, float(times[hit] - times[s]), first.alert_id, resolution
    )

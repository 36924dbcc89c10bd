"""Alert-level metrics: firing intervals against labelled rows, edge cases by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from anomstream.evaluation.alert_metrics import (
    AlertCounts,
    Episode,
    alert_intervals,
    combine,
    episodes_from_labels,
    evaluate_alerts,
    labels_from_episodes,
)
from anomstream.stream.alerts import iso_time

T0 = 1_800_000_000.0


def _times(rows: int, step: float = 60.0) -> np.ndarray:
    return T0 + step * np.arange(rows, dtype=float)


def _alert(ident: str, status: str, row: int, times: np.ndarray) -> dict[str, Any]:
    return {
        "alert_id": ident,
        "status": status,
        "event_time": iso_time(float(times[row])),
        "started_at": iso_time(float(times[row])),
        "sensors": [{"name": "current_a", "score": 1.0, "contribution": 1.0}],
        "source": {"topic": "replay", "partition": 0, "offset": row},
    }


def _episode(ident: str, fire: int, resolve: int | None, times: np.ndarray) -> list[dict]:
    docs = [_alert(ident, "firing", fire, times)]
    if resolve is not None:
        docs.append(_alert(ident, "resolved", resolve, times))
    return docs


def test_one_alert_inside_one_episode() -> None:
    t = _times(20)
    alerts = _episode("a", 6, 12, t)  # rows 6..11
    m = evaluate_alerts(t, alerts, episodes=[(5, 9)])
    c = m.counts
    assert (c.rows, c.anomalous_rows, c.tp_rows, c.fp_rows, c.fn_rows) == (20, 5, 4, 2, 1)
    assert m.precision == pytest.approx(4 / 6) and m.recall == pytest.approx(4 / 5)
    assert m.f1 == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert m.false_alarm_rate == pytest.approx(2 / 15)
    assert m.missed_alarm_rate == pytest.approx(1 / 5)
    assert (c.alerts, c.false_alerts, m.false_alerts_per_10k) == (1, 0, 0.0)
    assert m.clean_time_in_alert == pytest.approx(2 / 15)
    (e,) = m.episodes
    assert (e.detected, e.delay_rows, e.delay_seconds, e.alert_id) == (True, 1, 60.0, "a")
    assert e.resolution_rows == 3  # episode ends at row 9, resolved at row 12


def test_no_alerts() -> None:
    t = _times(10)
    m = evaluate_alerts(t, [], episodes=[(2, 4)])
    assert (m.counts.tp_rows, m.counts.fp_rows) == (0, 0)
    assert m.precision is None and m.f1 is None  # nothing alerted: precision undefined
    assert (m.recall, m.false_alarm_rate, m.missed_alarm_rate) == (0.0, 0.0, 1.0)
    assert m.false_alerts_per_10k == 0.0 and m.clean_time_in_alert == 0.0
    (e,) = m.episodes
    assert not e.detected and e.delay_rows is None and e.resolution_rows is None


def test_alert_open_at_the_end_of_the_stream() -> None:
    t = _times(10)
    m = evaluate_alerts(t, _episode("a", 7, None, t), episodes=[(6, 8)])
    assert alert_intervals(_episode("a", 7, None, t), t)[0].end == 10
    assert (m.counts.tp_rows, m.counts.fp_rows) == (2, 1)  # rows 7, 8 and clean row 9
    (e,) = m.episodes
    assert e.detected and e.delay_rows == 1 and e.resolution_rows is None  # never resolves


def test_alert_open_before_the_episode_counts_with_zero_delay() -> None:
    t = _times(12)
    m = evaluate_alerts(t, _episode("a", 1, 6, t), episodes=[(4, 8)])
    (e,) = m.episodes
    assert (e.delay_rows, e.delay_seconds, e.resolution_rows) == (0, 0.0, -2)
    assert m.counts.false_alerts == 0  # it overlaps the episode
    assert m.counts.fp_rows == 3


def test_alert_before_the_labels_is_a_false_alert() -> None:
    t = _times(30)
    alerts = _episode("early", 2, 5, t) + _episode("hit", 21, 26, t)
    m = evaluate_alerts(t, alerts, episodes=[(20, 24)])
    assert (m.counts.alerts, m.counts.false_alerts) == (2, 1)
    assert m.false_alerts_per_10k == pytest.approx(10_000 / 25)
    assert m.episodes[0].alert_id == "hit" and m.episodes[0].resolution_rows == 2


def test_overlapping_episodes_are_judged_each_and_rows_count_once() -> None:
    t = _times(20)
    m = evaluate_alerts(t, _episode("a", 8, 11, t), episodes=[(3, 9), (6, 12)])
    assert m.counts.anomalous_rows == 10  # rows 3..12
    assert [(e.delay_rows, e.resolution_rows) for e in m.episodes] == [(5, 2), (2, -1)]
    assert m.detected_episodes == 2


def test_empty_stream() -> None:
    m = evaluate_alerts(np.array([]), [], labels=np.array([], dtype=bool))
    assert m.counts == AlertCounts()
    assert m.episodes == ()
    assert all(
        v is None
        for v in (m.precision, m.recall, m.f1, m.false_alarm_rate, m.missed_alarm_rate,
                  m.false_alerts_per_10k, m.clean_time_in_alert)
    )


def test_clean_time_share_weighs_rows_by_their_time_step() -> None:
    t = T0 + np.array([0.0, 10, 20, 30, 130, 140])  # row 3 stands for 100 s
    m = evaluate_alerts(t, _episode("a", 3, 4, t), labels=np.zeros(6, dtype=bool))
    assert m.false_alarm_rate == pytest.approx(1 / 6)
    assert m.clean_time_in_alert == pytest.approx(100 / 150)  # last row: the median step, 10 s
    assert m.counts.false_alerts == 1


def test_scored_from_leaves_history_out_but_keeps_open_alerts() -> None:
    t = _times(20)
    alerts = _episode("history", 2, 4, t) + _episode("across", 8, 12, t)
    m = evaluate_alerts(t, alerts, episodes=[(15, 17)], scored_from=10)
    assert m.counts.rows == 10 and m.counts.fp_rows == 2  # rows 10, 11 of "across"
    assert m.counts.alerts == 0  # both fired before row 10


def test_rows_located_by_event_time() -> None:
    t = _times(10)
    alerts = _episode("a", 3, 5, t)
    for doc in alerts:
        doc["source"]["offset"] = 987_654  # a Kafka offset, not a row
    (interval,) = alert_intervals(alerts, t, locate="event_time")
    assert (interval.start, interval.end, interval.sensors) == (3, 5, ("current_a",))


def test_combine_sums_counts() -> None:
    t = _times(10)
    one = evaluate_alerts(t, _episode("a", 2, 4, t), episodes=[(2, 3)])
    two = evaluate_alerts(t, [], episodes=[(5, 6)])
    total = combine([one, two])
    assert total.counts.rows == 20 and total.counts.anomalous_rows == 4
    assert total.recall == pytest.approx(0.5) and len(total.episodes) == 2
    assert total.to_dict()["counts"]["clean_rows"] == 16


def test_labels_and_episodes_convert_both_ways() -> None:
    mask = labels_from_episodes([Episode(0, 1), (4, 5)], 6)
    assert episodes_from_labels(mask) == [Episode(0, 1), Episode(4, 5)]
    with pytest.raises(ValueError, match="not inside rows"):
        labels_from_episodes([(3, 9)], 6)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ([_alert("a", "resolved", 3, _times(5))], "never fired"),
        ([_alert("a", "firing", 3, _times(5)), _alert("a", "resolved", 1, _times(5))], "before"),
        ([_alert("a", "firing", 7, _times(8))], "outside"),
        ([{**_alert("a", "firing", 1, _times(5)), "status": "pending"}], "neither"),
    ],
)
def test_inconsistent_alerts_are_errors(alerts: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_alerts(_times(5), alerts, labels=np.zeros(5, dtype=bool))


def test_labels_of_the_wrong_length_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 labels for 5 rows"):
        evaluate_alerts(_times(5), [], labels=np.zeros(3, dtype=bool))

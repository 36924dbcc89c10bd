"""Every alert of every kind goes out through `AlertEmitter.emit`: recorded in the machine's
alert book (`anomstream.stream.alert_book`), counted, and rendered as an `anomstream.alert/v1`
message.

The open-alert gauges follow the book: `anomstream_alerts_open{kind,severity}` over all
machines, and `anomstream_alerts_firing{machine,kind,severity}` while a machine has such an
alert open. A machine restored from a checkpoint shows its open alerts again (`restored`); one
whose partition moved to another instance leaves the gauges (`released`): the new owner reports
it.
"""

from __future__ import annotations

from typing import Any

from anomstream import __version__
from anomstream.detectors.entities import MACHINE_WIDE, MachineState, ModelStore
from anomstream.detectors.policy import Transition
from anomstream.stream import alert_book
from anomstream.stream.alerts import AlertSource, OutgoingMessage, alert_id, build_alert
from anomstream.stream.metrics import Metrics

__all__ = ["AlertEmitter"]


class AlertEmitter:
    """Turns policy, health, presence, feedback and mode transitions into alert messages."""

    def __init__(self, config: Any, *, metrics: Metrics, models: ModelStore, threshold: float) -> None:
        self.metrics = metrics
        self.models = models
        self.threshold = threshold  # the policy's, reported in every alert
        self.topic = config.kafka.alert_topic
        self.default_detector = config.detector.name
        self.machine_mode = config.detector.entity == "machine"
        instance = config.service.instance or "local"
        self._ce_source = f"anomstream://{config.kafka.group_id}/{instance}"

    def restored(self, machine: str, state: MachineState) -> None:
        """A machine restored from a checkpoint may have alerts open: show them as firing."""
        for entry in alert_book.open_alerts(state):
            self._count_open(machine, state, entry["kind"], entry["severity"], +1)

    def _count_open(
        self, machine: str, state: MachineState, kind: str, severity: str, delta: int,
        *, leaving: bool = False,
    ) -> None:
        """Keep the open-alert gauges in step with the book: the aggregate by kind and severity,
        and the machine's series while it has such an alert open (removed at zero, and when the
        machine moves to another instance: `leaving`)."""
        self.metrics.alerts_open.labels(kind, severity).inc(delta)
        now_open = 0 if leaving else sum(
            1 for e in alert_book.open_alerts(state) if e["kind"] == kind and e["severity"] == severity
        )
        gauge = self.metrics.alerts_firing
        if now_open > 0:
            gauge.labels(machine, kind, severity).set(now_open)
        else:
            try:
                gauge.remove(machine, kind, severity)
            except KeyError:
                pass  # fired before a restart of a state-less instance: the gauge never saw it

    def emit(
        self,
        state: MachineState,
        machine: str,
        transition: Transition,
        values: dict[str, float],
        event_time: float,
        source: AlertSource,
        now: float,
    ) -> OutgoingMessage:
        """Record a transition in the machine's alert book, count it, render it as an alert."""
        shares = list(transition.sensors) or list(values)
        ident = alert_id(machine, shares, transition.started_at, transition.kind)
        alert_book.record(state, ident, transition, event_time)
        state.dirty = True
        delta = 1 if transition.status == "firing" else -1
        self._count_open(machine, state, transition.kind, transition.severity, delta)
        self.metrics.alerts.labels(transition.kind, transition.severity, transition.status).inc()
        detector = self._detector_name(machine, transition)
        return build_alert(
            transition,
            machine=machine,
            values=values,
            event_time=event_time,
            detected_at=now,
            threshold=self.threshold,
            detector={"name": detector, "version": __version__},
            source=source,
            ce_source=self._ce_source,
            topic=self.topic,
        )

    def _detector_name(self, machine: str, transition: Transition) -> str:
        """The top sensor's detector, `+` the machine-wide model's when the machine has one;
        for the other kinds, what raised them."""
        if transition.kind != "anomaly":
            return "presence" if transition.kind == "silent" else "sensor_health"
        sensor = next(iter(transition.sensors), MACHINE_WIDE)
        entity = self.models.peek(machine, MACHINE_WIDE if self.machine_mode else sensor)
        name = entity.detector if entity is not None else self.default_detector
        joint = self.models.joint
        return f"{name}+{joint.detector}" if joint is not None and not self.machine_mode else name

    def released(self, machine: str, state: MachineState) -> None:
        """The machine moved to another instance: its open alerts leave this one's gauges."""
        for entry in alert_book.open_alerts(state):
            self._count_open(machine, state, entry["kind"], entry["severity"], -1, leaving=True)

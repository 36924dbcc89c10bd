"""The exceptions anomstream raises, one hierarchy so callers can tell what to do.

- `ConfigError`: the operator's configuration is wrong; fatal at start-up, names the key.
- `InvalidRecord`: one input record cannot be used; it goes to the dead-letter topic.
- `DeliveryError`: the broker did not acknowledge output; offsets must not be committed.
- `BrokerUnavailable`: the broker cannot be reached (start-up, embedded broker).
- `TopicLayoutError`: the topics in the cluster do not fit the configuration (a changelog with
  fewer partitions than an input topic); fatal, the message says how to fix the topics.
"""

from __future__ import annotations

__all__ = [
    "AnomstreamError",
    "BrokerUnavailable",
    "ConfigError",
    "DeliveryError",
    "InvalidRecord",
    "TopicLayoutError",
]


class AnomstreamError(Exception):
    """Base class of every error anomstream raises on purpose."""


class ConfigError(AnomstreamError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error at '{key}': {problem}")
        self.key = key
        self.problem = problem


class InvalidRecord(AnomstreamError):
    """An input record cannot be turned into a reading.

    `reason` is a short, stable, low-cardinality code (a metric label and a DLQ header).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DeliveryError(AnomstreamError):
    """An alert or dead letter was not acknowledged by the broker."""


class BrokerUnavailable(AnomstreamError):
    """The Kafka broker could not be reached or did not start."""


class TopicLayoutError(AnomstreamError):
    """The cluster's topics do not fit the configuration; the message names them and the fix."""

"""The exceptions anomstream raises, one hierarchy so callers can tell what to do.

- `ConfigError`: the operator's configuration is wrong; fatal at start-up, names the key.
- `InvalidRecord`: one input record cannot be used; it goes to the dead-letter topic.
- `DeliveryError`: the broker did not acknowledge output; offsets must not be committed.
- `BrokerUnavailable`: the broker cannot be reached (start-up, embedded broker).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AnomstreamError",
    "BrokerUnavailable",
    "ConfigError",
    "DeliveryError",
    "InvalidRecord",
]


class AnomstreamError(Exception):
    """Base class of every error anomstream raises on purpose."""


class ConfigError(AnomstreamError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    `key` and `problem` are the first problem; `problems` holds every `(key, problem)` found,
    so an operator fixes a config file in one round, and str() lists them all, one per line.
    """

    def __init__(self, key: str, problem: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = [(key, problem), *more]
        super().__init__("\n".join(f"config error at '{k}': {p}" for k, p in self.problems))
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

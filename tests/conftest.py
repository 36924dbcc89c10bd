"""Shared fixtures: one embedded Tansu broker per test session, unique topics per test.

Set ANOMSTREAM_TEST_BOOTSTRAP=host:port to run the broker tests against an external Kafka.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker

# Checkpoint signing key for every process the tests start (state is on by default and needs one).
TEST_SIGNING_KEY = "anomstream-test-signing-key"
os.environ.setdefault("ANOMSTREAM_STATE__SIGNING_KEY", TEST_SIGNING_KEY)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Bootstrap servers of a real Kafka-protocol broker, up for the whole session."""
    external = os.environ.get("ANOMSTREAM_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names."""
    return uuid.uuid4().hex[:10]

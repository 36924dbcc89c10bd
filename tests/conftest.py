"""Shared fixtures: one embedded Tansu broker per test session, unique topics per test.

Set ANOMSTREAM_TEST_BOOTSTRAP=host:port to run the broker tests against an external Kafka.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import anomstream.stream
import pytest
from anomstream.stream.broker import EmbeddedBroker

import anomstream

REPO = Path(__file__).resolve().parents[1]
INSTALLED_FROM = Path(anomstream.__file__).resolve().parent

# `./dev test` sets ANOMSTREAM_TEST_INSTALL=wheel: the suite must then exercise the installed
# wheel, never modules of the checkout (an editable install or a stray sys.path entry).
_SOURCE_DIRS = [REPO / name for name in ("anomstream", "stream", "detectors", "evaluation", "config")]
if os.environ.get("ANOMSTREAM_TEST_INSTALL") == "wheel" and (
    "site-packages" not in INSTALLED_FROM.parts
    or any(Path(m.__file__).resolve().parent in _SOURCE_DIRS for m in (anomstream, anomstream.stream))
):
    raise pytest.UsageError(f"testing {INSTALLED_FROM}, a module of the checkout, not the installed wheel")


def pytest_report_header() -> str:
    return f"anomstream {anomstream.__version__} imported from {INSTALLED_FROM}"

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

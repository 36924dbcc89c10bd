"""Wiring: build the clients, pipeline, metrics and HTTP endpoint from a `Config`, then serve.

The only place that constructs collaborators; everything below it receives them.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from anomstream.stream.broker import wait_for_kafka
from anomstream.stream.checkpoint import Checkpointer, changelog_reader, ensure_changelog
from anomstream.stream.config import Config
from anomstream.stream.drilldown import DrillDown
from anomstream.stream.http import Health, HttpServer
from anomstream.stream.kafka_io import (
    common_client_config,
    ensure_topics,
    make_consumer,
    make_producer,
    partition_counts,
)
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import BatchOutput, Pipeline
from anomstream.stream.service import Service

__all__ = ["new_registry", "serve"]

log = logging.getLogger("anomstream")


def new_registry() -> CollectorRegistry:
    """A registry with anomstream's metrics plus the standard process/platform/GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _transactional_id(config: Config) -> str | None:
    """Stable per instance, so a restarted instance fences its crashed predecessor."""
    if not config.state.exactly_once:
        return None
    return f"anomstream-{config.kafka.group_id}-{config.service.instance or socket.gethostname()}"


def ensure_side_topics(config: Config) -> None:
    """Create the feedback and control topics with as many partitions as the largest input: a
    message keyed by machine id then lands on the partition number of the machine's readings,
    which the instance holding its state owns (`CoPartitionedAssignor`)."""
    kafka = config.kafka
    counts = partition_counts(kafka, [*kafka.input_topics, *config.side_topics])
    needed = max((counts[t] for t in kafka.input_topics if t in counts), default=kafka.topic_partitions)
    missing = [t for t in config.side_topics if t not in counts]
    if missing:
        ensure_topics(kafka, missing, partitions={t: needed for t in missing})
    for topic in config.side_topics:
        if topic in counts and counts[topic] != needed:
            log.warning(
                "topic %s has %d partitions, the input %d: messages keyed by machine id may reach "
                "an instance that does not hold the machine (they are dead-lettered, not lost)",
                topic, counts[topic], needed,
            )


def serve(
    config: Config,
    *,
    stop: threading.Event,
    registry: CollectorRegistry | None = None,
    on_output: Callable[[BatchOutput], None] | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Run the service until `stop` is set. Returns the process exit code."""
    config.require_signing_key()
    registry = registry if registry is not None else new_registry()
    metrics = Metrics(registry)
    health = Health()
    http = HttpServer(host=config.http.host, port=config.http.port, registry=registry, health=health).start()
    log.info("metrics and health on http://%s:%d/metrics", config.http.host, http.port)
    if on_listening is not None:
        on_listening(http.port)
    try:
        kafka = config.kafka
        if not wait_for_kafka(
            kafka.bootstrap_servers, kafka.startup_timeout_seconds,
            client_options=common_client_config(kafka), stop=stop,
        ):
            return 0  # SIGTERM/SIGINT while waiting: nothing started, nothing to clean up
        state = config.state
        if kafka.create_topics:
            ensure_topics(kafka, [*kafka.input_topics, kafka.alert_topic, kafka.dlq_topic])
        if state.enabled:
            # After the inputs exist: the changelog is sized after the largest of them.
            ensure_changelog(config)
        if kafka.create_topics and config.side_topics:
            ensure_side_topics(config)
        pipeline = Pipeline(config, metrics=metrics)
        # The HTTP port has answered probes since start-up; from now on it also serves the
        # drill-down, and scrapes count the models.
        drill = DrillDown(pipeline)
        http.serve_machines(drill)
        metrics.model_census.bind(drill.census)
        producer = make_producer(kafka, transactional_id=_transactional_id(config))
        checkpointer = None
        if state.enabled:
            checkpointer = Checkpointer(
                config, store=pipeline.models, producer=producer, metrics=metrics,
                reader_factory=changelog_reader(config),
            )
        service = Service(
            config,
            consumer_factory=lambda listener: make_consumer(
                kafka, listener=listener, side_topics=config.side_topics
            ),
            producer=producer,
            pipeline=pipeline,
            metrics=metrics,
            health=health,
            checkpointer=checkpointer,
            on_output=on_output,
        )
        log.info(
            "consuming %s as group %r; alerts -> %s, dead letters -> %s; detector %s",
            ",".join(kafka.input_topics), kafka.group_id, kafka.alert_topic, kafka.dlq_topic,
            config.detector.name,
        )
        service.run(stop)
        log.info("stopped cleanly")
        return 0
    finally:
        metrics.model_census.bind(None)
        http.stop()

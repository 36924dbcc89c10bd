"""The HTTP port as a scraper and a probe see it: real sockets, prometheus_client's exposition."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator

import pytest
from anomstream.stream.http import Health, HttpServer
from anomstream.stream.metrics import Metrics
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def server() -> Iterator[HttpServer]:
    # anomstream's metrics only: the process collectors change between two scrapes.
    registry = CollectorRegistry()
    Metrics(registry).readings_consumed.labels("telemetry").inc(7)
    health = Health()
    health.set_ready(True)
    running = HttpServer(host="127.0.0.1", port=0, registry=registry, health=health).start()
    yield running
    running.stop()


def _request(server: HttpServer, method: str, path: str, **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request(method, path, headers=headers)
    return connection.getresponse()


def test_metrics_in_the_prometheus_text_format_by_default(server: HttpServer) -> None:
    response = _request(server, "GET", "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    (sample,) = [s for s in families["anomstream_readings_consumed"].samples if s.name.endswith("_total")]
    assert sample.value == 7


def test_openmetrics_when_the_scraper_asks_for_it(server: HttpServer) -> None:
    response = _request(server, "GET", "/metrics", Accept="application/openmetrics-text; version=1.0.0")
    assert response.getheader("Content-Type").startswith("application/openmetrics-text")
    assert response.read().decode().rstrip().endswith("# EOF")


def test_gzip_when_accepted(server: HttpServer) -> None:
    response = _request(server, "GET", "/metrics", **{"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert b"anomstream_readings_consumed_total" in gzip.decompress(response.read())


def test_name_filter(server: HttpServer) -> None:
    body = _request(server, "GET", "/metrics?name[]=anomstream_readings_consumed_total").read().decode()
    names = {f.name for f in text_string_to_metric_families(body)}
    assert names == {"anomstream_readings_consumed"}


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_head_gives_the_headers_without_a_body(server: HttpServer, path: str) -> None:
    get = _request(server, "GET", path)
    body = get.read()
    head = _request(server, "HEAD", path)
    assert head.status == get.status == 200
    assert head.getheader("Content-Type") == get.getheader("Content-Type")
    if path == "/healthz":
        # its body carries the loop's silence in seconds, which may gain a digit between the two
        # requests: the HEAD's length is of the body it would have sent, a moment later
        assert abs(int(head.getheader("Content-Length")) - len(body)) <= 2 and len(body) > 0
    else:
        assert int(head.getheader("Content-Length")) == len(body) > 0
    assert head.read() == b""


def test_health_json_and_not_found(server: HttpServer) -> None:
    assert json.loads(_request(server, "GET", "/readyz").read())["status"] == "ok"
    missing = _request(server, "GET", "/nope")
    assert missing.status == 404 and "/metrics" in json.loads(missing.read())["paths"]

"""A TLS front for the embedded broker: terminates TLS on one loopback port, forwards the bytes.

Tansu 0.6 cannot serve TLS itself: its `broker --cert FILE --key FILE` flags share a clap
argument group that allows only one of them ("the argument '--cert <CERT>' cannot be used with
'--key <KEY>'"), and even built in, its listener never uses the TLS acceptor it makes (tansu
v0.6.0, tansu-broker/src/broker.rs: `let _acceptor = ...`). So `EmbeddedBroker(tls=...)`
runs Tansu in plaintext on a private port and puts this front before it, advertising the
front's port: every Kafka request a client sends then travels through a real TLS session that
the client's own certificate checks (CA, host name) accept or refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerTls", "TlsFront", "server_context"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ServerTls:
    """What the broker presents: `certfile` (PEM chain, leaf first) and its `keyfile`; with
    `client_cafile`, clients must present a certificate that CA signed (mutual TLS)."""

    certfile: str | Path
    keyfile: str | Path
    client_cafile: str | Path | None = None


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """A TLS 1.2+ server context for `tls`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.certfile, tls.keyfile)
    if tls.client_cafile is not None:
        context.load_verify_locations(tls.client_cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass  # the other side went away: the connection ends either way
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class TlsFront:
    """Listens with TLS on `127.0.0.1:port`, forwards each connection to `upstream_port`."""

    def __init__(self, context: ssl.SSLContext, *, port: int, upstream_port: int) -> None:
        self.context = context
        self.port = port
        self.upstream_port = upstream_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed: asyncio.Event | None = None

    def start(self) -> TlsFront:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._closed = asyncio.Event()
            try:
                server = await asyncio.start_server(
                    self._handle, "127.0.0.1", self.port, ssl=self.context
                )
            except OSError as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await self._closed.wait()
            server.close()
            # End the forwarding of connections still open, so none is left pending.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(main())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name=f"tls-front-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

    def stop(self) -> None:
        loop, closed, thread = self._loop, self._closed, self._thread
        if loop is not None and closed is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(closed.set)
        if thread is not None:
            thread.join(5)
        self._thread = None

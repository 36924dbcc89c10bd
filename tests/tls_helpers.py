"""Certificates for the TLS tests, made per test session: nothing is checked in, nothing expires.

`trustme` makes a throw-away CA, a server certificate for 127.0.0.1 and a client certificate
signed by it; the client key is written encrypted (so `ssl_password` is exercised), and a
second, unrelated CA stands for "a certificate the client does not trust".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization

from anomstream.stream.broker import EmbeddedBroker
from anomstream.stream.tls_front import ServerTls

# Distinctive, so a test can search the service's whole log for it.
CLIENT_KEY_PASSWORD = "key-pass-7f3a9c1e-never-logged"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # signs the server and the client certificate
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with CLIENT_KEY_PASSWORD
    other_ca: Path  # signs nothing the broker presents

    def server(self, *, require_client_cert: bool = True) -> ServerTls:
        return ServerTls(self.server_cert, self.server_key, self.ca if require_client_cert else None)

    def client_options(self, *, cafile: Path | None = None) -> dict[str, Any]:
        """kafka-python settings of a client that trusts `cafile` (our CA by default)."""
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(cafile or self.ca),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
            "ssl_password": CLIENT_KEY_PASSWORD,
        }

    def settings(self, *, cafile: Path | None = None) -> dict[str, Any]:
        """The same as anomstream config overrides (`kafka.<key>`)."""
        return {f"kafka.{k}": v for k, v in self.client_options(cafile=cafile).items()}

    def environment(self, *, cafile: Path | None = None) -> dict[str, str]:
        """The same as `ANOMSTREAM_KAFKA__<KEY>` variables for an `anomstream run` child."""
        return {f"ANOMSTREAM_KAFKA__{k.upper()}": str(v) for k, v in self.client_options(cafile=cafile).items()}


def make_tls_files(folder: Path) -> TlsFiles:
    ca = trustme.CA(organization_name="anomstream test CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("anomstream-client@example.org")
    files = TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(files.ca)
    server.cert_chain_pems[0].write_to_path(files.server_cert)  # the leaf, as brokers usually present
    server.private_key_pem.write_to_path(files.server_key)
    client.cert_chain_pems[0].write_to_path(files.client_cert)
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    files.client_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(CLIENT_KEY_PASSWORD.encode()),
    ))
    trustme.CA(organization_name="somebody else's CA").cert_pem.write_to_path(files.other_ca)
    return files


def tls_broker(files: TlsFiles) -> EmbeddedBroker:
    """An embedded broker that serves only TLS and wants a client certificate of our CA."""
    return EmbeddedBroker(tls=files.server(), client_options=files.client_options())

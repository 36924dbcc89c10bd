"""Signed serialization of per-machine state: HMAC-SHA256 over the pickle, checked before loading.

Unpickling attacker-controlled bytes runs attacker-chosen code, and a changelog topic is only as
trustworthy as every client that can write to it. So every checkpoint is `version || tag || body`
with `tag = HMAC-SHA256(key, version || body)`, and `loads` refuses (raises `StateRejected`)
without ever calling `pickle.loads` unless the tag verifies under the current key or one of the
previous keys (key rotation: deploy the new key as current with the old one in
`previous_signing_keys`, wait one checkpoint interval so every machine is re-signed, then drop
the old key).

Version 2 adds a small signed JSON header, readable without unpickling: the plain summaries a
timer needs about machines that are not live (`MachineState.ops[...]["header"]`, e.g. when a
machine was last seen), so a restored changelog can be checked without thawing every machine.
`version(2) || tag || header length (4 bytes) || header || body`, the tag over all of it.
Version 1 records (no header) still load; `dumps` writes version 1 when there is no header.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from anomstream.stream.errors import AnomstreamError, ConfigError

__all__ = ["StateCodec", "StateRejected", "codec_from_config"]

_VERSION = b"\x01"
_VERSION_HEADER = b"\x02"
_TAG = 32  # bytes of SHA-256
_LENGTH = 4  # bytes of the header length, big-endian


class StateRejected(AnomstreamError):
    """Serialized state failed verification (wrong key, tampered, truncated, unknown version)."""


class StateCodec:
    """Sign-then-store, verify-then-load. Keys never appear in `repr`."""

    def __init__(self, key: str | bytes, previous_keys: Sequence[str | bytes] = ()) -> None:
        self._key = _as_bytes(key)
        self._verify_keys = [self._key, *map(_as_bytes, previous_keys)]

    def __repr__(self) -> str:
        return f"StateCodec(<{len(self._verify_keys)} key(s) hidden>)"

    def dumps(self, obj: Any, header: Mapping[str, Any] | None = None) -> bytes:
        """Sign `obj`'s pickle; a non-empty `header` (JSON-able) goes in front, readable with
        `header` without unpickling."""
        body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if not header:
            return _VERSION + self._tag(self._key, _VERSION + body) + body
        head = orjson.dumps(header)
        signed = _VERSION_HEADER + len(head).to_bytes(_LENGTH, "big") + head + body
        return _VERSION_HEADER + self._tag(self._key, signed) + signed[1:]

    def loads(self, data: bytes) -> Any:
        return pickle.loads(self._verified(data)[1])  # verified: written by a holder of our key

    def header(self, data: bytes) -> dict[str, Any]:
        """The verified header of a record ({} for version 1), never unpickling its body."""
        head = self._verified(data)[0]
        if not head:
            return {}
        try:
            value = orjson.loads(head)
        except orjson.JSONDecodeError:  # signed by us, so only a bug writes this
            raise StateRejected("state header is not JSON") from None
        if not isinstance(value, dict):
            raise StateRejected("state header is not a JSON object")
        return value

    def _verified(self, data: bytes) -> tuple[bytes, bytes]:
        """(header, body) of `data` once its tag verifies under one of the keys."""
        version = data[:1]
        if len(data) < 1 + _TAG or version not in (_VERSION, _VERSION_HEADER):
            raise StateRejected("unknown state format or truncated record")
        tag, rest = data[1 : 1 + _TAG], data[1 + _TAG :]
        if not any(hmac.compare_digest(tag, self._tag(key, version + rest)) for key in self._verify_keys):
            raise StateRejected("signature does not verify under any configured key")
        if version == _VERSION:
            return b"", rest
        length = int.from_bytes(rest[:_LENGTH], "big")
        if len(rest) < _LENGTH + length:
            raise StateRejected("truncated state header")
        return rest[_LENGTH : _LENGTH + length], rest[_LENGTH + length :]

    @staticmethod
    def _tag(key: bytes, signed: bytes) -> bytes:
        return hmac.new(key, signed, hashlib.sha256).digest()


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def codec_from_config(state_config: Any) -> StateCodec | None:
    """The codec of a `StateConfig`, or None when state is disabled."""
    if not state_config.enabled:
        return None
    # The one place the state keys leave their SecretStr.
    key = state_config.signing_key.get_secret_value()
    if not key:
        raise ConfigError("state.signing_key", "required when state.enabled is true")
    return StateCodec(key, [old.get_secret_value() for old in state_config.previous_signing_keys])

"""Signed serialization of per-machine state: HMAC-SHA256 over the pickle, checked before loading.

Unpickling attacker-controlled bytes runs attacker-chosen code, and a changelog topic is only as
trustworthy as every client that can write to it. So every checkpoint is `version || tag || body`
with `tag = HMAC-SHA256(key, version || body)`, and `loads` refuses (raises `StateRejected`)
without ever calling `pickle.loads` unless the tag verifies under the current key or one of the
previous keys (key rotation: deploy the new key as current with the old one in
`previous_signing_keys`, wait one checkpoint interval so every machine is re-signed, then drop
the old key).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Sequence
from typing import Any

from anomstream.stream.errors import AnomstreamError, ConfigError

__all__ = ["StateCodec", "StateRejected", "codec_from_config"]

_VERSION = b"\x01"
_TAG = 32  # bytes of SHA-256


class StateRejected(AnomstreamError):
    """Serialized state failed verification (wrong key, tampered, truncated, unknown version)."""


class StateCodec:
    """Sign-then-store, verify-then-load. Keys never appear in `repr`."""

    def __init__(self, key: str | bytes, previous_keys: Sequence[str | bytes] = ()) -> None:
        self._key = _as_bytes(key)
        self._verify_keys = [self._key, *map(_as_bytes, previous_keys)]

    def __repr__(self) -> str:
        return f"StateCodec(<{len(self._verify_keys)} key(s) hidden>)"

    def dumps(self, obj: Any) -> bytes:
        body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        tag = hmac.new(self._key, _VERSION + body, hashlib.sha256).digest()
        return _VERSION + tag + body

    def loads(self, data: bytes) -> Any:
        if len(data) < 1 + _TAG or data[:1] != _VERSION:
            raise StateRejected("unknown state format or truncated record")
        tag, body = data[1 : 1 + _TAG], data[1 + _TAG :]
        for key in self._verify_keys:
            expected = hmac.new(key, _VERSION + body, hashlib.sha256).digest()
            if hmac.compare_digest(tag, expected):
                return pickle.loads(body)  # verified: written by a holder of our key
        raise StateRejected("signature does not verify under any configured key")


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

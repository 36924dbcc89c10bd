"""Hostile telemetry for the fuzz tests: a seeded mutator of valid records, and a buggy detector.

`RecordMutator(seed).records(base, count)` turns valid simulator records into `count` mutated
`(kind, key, value)` triples: bit flips, truncation, wrong types, huge and tiny numbers, deep
nesting, odd unicode, far timestamps, oversize values, key fallbacks, thousands of new sensor
names, structural junk, random bytes, and the two poison pills of issue 9. The same seed gives
the same records. Mutated records never use the machine ids of `base`, so whatever of them is
still valid does not teach the models of the machines a test checks for alerts.

`RaisingDetector` stands in for a bug in a detector: it raises on one value, so the pipeline's
per-record isolation (`internal_error`) can be tested with the real registry.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from river.base import AnomalyDetector

__all__ = [
    "KINDS",
    "POISON",
    "POISON_PILLS",
    "RaisingDetector",
    "RecordMutator",
    "register_raising_detector",
]

POISON = 13.125  # the value RaisingDetector raises on (exact in binary, survives JSON)

# The two records of issue 9 that killed the service, again after every restart.
POISON_PILLS: tuple[tuple[str, bytes], ...] = (
    (
        "int_beyond_float",
        b'{"machine_id": "press-01", "ts": 1795000000, "sensors": {"temp_c": 1'
        + b"0" * 400
        + b"}}",
    ),
    (
        "lone_surrogate_id",
        b'{"machine_id": "\\ud800", "ts": 1795000000, "sensors": {"temp_c": 1.0}}',
    ),
)

_NUMBERS: tuple[str, ...] = (
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "1" + "0" * 4400,
    str(2**64),
    str(-(2**63) - 1),
    str(2**53 + 1),
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1e38",
    "-1e38",
    "1.0000001e38",
    "5e-324",
    "-5e-324",
    "1e-300",
    "0",
    "-0.0",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e30",
    "123456789012345678901234567890",
)
_NAMES: tuple[str, ...] = (
    "\ud800",
    "\udfff",
    "a\udc00b",
    "\U0001f525",
    "e\u0301",
    "\u200fpress",
    "\u202aabc",
    "x\u0000y",
    "\u2028",
    "\ufeffbom",
    "   ",
    "",
    "\t",
    "a" * 300,
    "\x7f",
    "\ue000",
    "\u00a0",
    "\U0001f468\u200d\U0001f469",
    "שלום",
    "\u0301\u0301\u0301",
    "ok-name",
    "temp\nc",
    "\x1b[31mred",
)
_KEYS: tuple[bytes | None, ...] = (
    None,
    b"",
    b"\xff\xfe",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"key\x00nul",
    b"k" * 300,
    "🔥".encode(),
    b" ",
    b"fine-key",
    "\u200f".encode(),
)
_TIMESTAMPS: tuple[Any, ...] = (
    "10000-01-01T00:00:00Z",
    1e300,
    -1,
    0,
    253402300800,
    7.3e9,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59Z",
    10**30,
    "nan",
    "inf",
    True,
    [],
    {},
    "2026-13-45",
    99999999999,
    -1e20,
    1795000000.5,
    "1795000000",
    "2199-12-31T23:59:59Z",
    "2200-01-01T00:00:01Z",
    1e-300,
    None,
)
# Big records are few: their bytes, not their number, would set the test's time.
_WEIGHTS = {"oversize": 0.05, "deep_nesting": 0.5, "poison_pill": 0.2}
_WRONG: tuple[Any, ...] = ("12", None, True, False, [], [1.0], {}, {"v": 1.0}, "", 0, -1, 1.5)


class RaisingDetector(AnomalyDetector):
    """Scores 0, learns nothing, and raises `ZeroDivisionError` when a value equals `poison`."""

    def __init__(self, poison: float = POISON) -> None:
        self.poison = poison

    def _check(self, x: Mapping[Any, Any]) -> None:
        if self.poison in x.values():
            raise ZeroDivisionError("fake detector bug")

    def learn_one(self, x: Mapping[Any, Any]) -> None:  # type: ignore[override]
        self._check(x)

    def score_one(self, x: Mapping[Any, Any]) -> float:  # type: ignore[override]
        self._check(x)
        return 0.0


def register_raising_detector(
    setitem: Callable[[Any, str, Any], None], name: str = "raises-on-poison"
) -> str:
    """Register `RaisingDetector` as `name` with `setitem` (pytest's `monkeypatch.setitem`)."""
    from anomstream.detectors.registry import DETECTORS, DetectorSpec

    setitem(
        DETECTORS,
        name,
        DetectorSpec("raises on POISON (tests)", lambda seed, **p: RaisingDetector(**p)),
    )
    return name


def _doc_bytes(doc: Any) -> bytes:
    # ensure_ascii: lone surrogates become "\ud800" escapes, which is how they travel in JSON.
    return json.dumps(doc, ensure_ascii=True).encode()


def _nest(depth: int, inner: str = "1", obj: bool = False) -> str:
    return ('{"a":' * depth + inner + "}" * depth) if obj else ("[" * depth + inner + "]" * depth)


class RecordMutator:
    """Seeded generator of hostile records derived from valid ones."""

    def __init__(self, seed: int, *, max_record_bytes: int = 65536) -> None:
        self.rng = random.Random(seed)
        self.max_record_bytes = max_record_bytes
        self._sensor_counter = 0
        self._machine_counter = 0
        self._mutations: dict[
            str, Callable[[dict[str, Any]], tuple[bytes | None, bytes | None]]
        ] = {
            "bit_flip": self._bit_flip,
            "truncate": self._truncate,
            "wrong_type": self._wrong_type,
            "number": self._number,
            "deep_nesting": self._deep_nesting,
            "odd_unicode": self._odd_unicode,
            "bad_utf8_name": self._bad_utf8_name,
            "far_timestamp": self._far_timestamp,
            "oversize": self._oversize,
            "key_fallback": self._key_fallback,
            "new_sensors": self._new_sensors,
            "structure": self._structure,
            "random_bytes": self._random_bytes,
            "poison_pill": self._poison_pill,
        }

    def records(
        self, base: Sequence[Mapping[str, Any]], count: int
    ) -> Iterator[tuple[str, bytes | None, bytes | None]]:
        """`count` mutated `(kind, key, value)` from the valid records `base`, kinds by weight."""
        kinds = list(self._mutations)
        weights = [_WEIGHTS.get(kind, 1.0) for kind in kinds]
        for kind in self.rng.choices(kinds, weights, k=count):
            doc = dict(base[self.rng.randrange(len(base))])
            doc["sensors"] = dict(doc["sensors"])
            doc["machine_id"] = f"fuzz-{self.rng.randrange(40):02d}"
            key, value = self._mutations[kind](doc)
            yield kind, key, value

    # --------------------------------------------------------------- the mutations

    def _keyed(self, doc: dict[str, Any], value: bytes | None) -> tuple[bytes | None, bytes | None]:
        # Keyed by machine like a well-behaved producer: one machine, one partition.
        return str(doc["machine_id"]).encode(), value

    def _bit_flip(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        data = bytearray(_doc_bytes(doc))
        for _ in range(self.rng.randint(1, 8)):
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
        # A flip can turn "fuzz-03" into "fuzz-02": key it by the machine it now names, as a
        # producer keying by machine id would (see the README: key = machine id).
        try:
            flipped = json.loads(data)
        except (ValueError, RecursionError):
            flipped = None
        if (
            isinstance(flipped, dict)
            and isinstance(flipped.get("machine_id"), str)
            and flipped["machine_id"]
        ):
            return flipped["machine_id"].encode("utf-8", "surrogatepass"), bytes(data)
        return self._keyed(doc, bytes(data))

    def _truncate(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        data = _doc_bytes(doc)
        return self._keyed(doc, data[: self.rng.randrange(len(data))])

    def _wrong_type(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        field = self.rng.choice(["machine_id", "ts", "sensors", "sensor"])
        wrong = self.rng.choice(_WRONG)
        key = str(doc["machine_id"]).encode()
        if field == "machine_id" and isinstance(wrong, str) and wrong:
            key = wrong.encode()  # "12" is a fine machine id: keyed by it, like any other
        if field == "sensor":
            doc["sensors"][self.rng.choice(list(doc["sensors"]))] = wrong
        else:
            doc[field] = wrong
        return key, _doc_bytes(doc)

    def _number(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        sensor = self.rng.choice(list(doc["sensors"]))
        doc["sensors"][sensor] = "@NUMBER@"
        text = _doc_bytes(doc).replace(b'"@NUMBER@"', self.rng.choice(_NUMBERS).encode())
        return self._keyed(doc, text)

    def _deep_nesting(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        depth = self.rng.choice([10, 500, 1100, 5000, 20000])
        nested = _nest(depth, obj=self.rng.random() < 0.5)
        where = self.rng.choice(["sensor", "sensors", "doc"])
        if where == "doc":
            return self._keyed(doc, nested.encode())
        if where == "sensor":
            doc["sensors"][self.rng.choice(list(doc["sensors"]))] = "@NEST@"
        else:
            doc["sensors"] = "@NEST@"
        return self._keyed(doc, _doc_bytes(doc).replace(b'"@NEST@"', nested.encode()))

    def _odd_unicode(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        name = self.rng.choice(_NAMES)
        if self.rng.random() < 0.5:
            doc["machine_id"] = (
                f"{name}-{self._next_machine()}" if name and self.rng.random() < 0.5 else name
            )
        else:
            doc["sensors"][name] = 1.0
        try:
            key: bytes | None = str(doc["machine_id"]).encode("utf-8")
        except UnicodeEncodeError:
            key = None  # a producer could not even key it; the machine id is unique per record
            doc["machine_id"] = f"{doc['machine_id']}{self._next_machine()}"
        return key, _doc_bytes(doc)

    def _bad_utf8_name(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        doc["sensors"]["@BAD@"] = 1.0
        raw = self.rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
        return self._keyed(doc, _doc_bytes(doc).replace(b"@BAD@", raw))

    def _far_timestamp(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        doc["ts"] = self.rng.choice(_TIMESTAMPS)
        return self._keyed(doc, _doc_bytes(doc))

    def _oversize(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        size = self.max_record_bytes + self.rng.choice([-200, 1, 100, 5000, 5000, 200_000])
        doc["pad"] = ""
        fill = size - len(_doc_bytes(doc))
        doc["pad"] = "x" * max(fill, 0)
        return self._keyed(doc, _doc_bytes(doc))

    def _key_fallback(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        del doc["machine_id"]
        key = self.rng.choice(_KEYS)
        if key and self.rng.random() < 0.3:
            key += f"-{self._next_machine()}".encode()
        return key, _doc_bytes(doc)

    def _new_sensors(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        roll = self.rng.random()
        # Mostly a handful of brand-new names; sometimes MAX_SENSORS exactly, or one more.
        count = 1025 if roll < 0.01 else 1024 if roll < 0.02 else self.rng.randint(1, 20)
        sensors = {}
        for _ in range(count):
            self._sensor_counter += 1
            sensors[f"s{self._sensor_counter}"] = self.rng.uniform(-1e6, 1e6)
        doc["sensors"] = sensors
        return self._keyed(doc, _doc_bytes(doc))

    def _structure(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        value = self.rng.choice(
            [
                None,  # a tombstone
                b"",
                b"{}",
                b"[]",
                b"null",
                b"1",
                b'"text"',
                b"true",
                b"{} {}",
                b"\xef\xbb\xbf{}",
                b'{"machine_id": "a", "machine_id": "b"}',
                _doc_bytes({"sensors": doc["sensors"]}),
                _doc_bytes({**doc, "sensors": {}}),
                _doc_bytes({**doc, "sensors": []}),
                b"\x00" * 10,
            ]
        )
        return self._keyed(doc, value)

    def _random_bytes(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        return self._keyed(doc, self.rng.randbytes(self.rng.randint(0, 300)))

    def _poison_pill(self, doc: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
        kind, value = self.rng.choice(POISON_PILLS)
        return (b"press-01" if kind == "int_beyond_float" else None), value

    def _next_machine(self) -> int:
        self._machine_counter += 1
        return self._machine_counter


KINDS = tuple(RecordMutator(0)._mutations)

"""`CoPartitionedAssignor`: partition p of every input topic on one member (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from anomstream.stream.assignor import CoPartitionedAssignor


class Cluster:
    def __init__(self, **counts: int) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None


@dataclass
class Subscription:
    topics: list[str]


@dataclass
class Member:
    member_id: str
    metadata: Subscription
    group_instance_id: str | None = None


def _assign(cluster: Cluster, members: list[Member]) -> dict[str, set[tuple[str, int]]]:
    result = CoPartitionedAssignor().assign(cluster, members)
    return {m: {(t, p) for t, ps in a.assigned_partitions for p in ps} for m, a in result.items()}


@pytest.mark.parametrize("instances", [1, 2, 3, 7])
def test_every_partition_once_and_each_number_on_one_member(instances: int) -> None:
    cluster = Cluster(a=2, b=5, c=1)
    members = [Member(f"m{i}", Subscription(["a", "b", "c"])) for i in range(instances)]
    owned = _assign(cluster, members)
    everything = [tp for tps in owned.values() for tp in tps]
    assert sorted(everything) == sorted((t, p) for t, n in cluster.counts.items() for p in range(n))
    owner_of: dict[int, str] = {}
    for member, tps in owned.items():
        for _, p in tps:
            assert owner_of.setdefault(p, member) == member, f"partition {p} split across members"


def test_the_range_assignor_would_split_them_this_one_does_not() -> None:
    # Two instances, topics of 2 and 5 partitions: range gives a-1 to one, b-1 to the other.
    both = Subscription(["a", "b"])
    owned = _assign(Cluster(a=2, b=5), [Member("m0", both), Member("m1", both)])
    assert owned == {
        "m0": {("a", 0), ("b", 0), ("b", 2), ("b", 4)},
        "m1": {("a", 1), ("b", 1), ("b", 3)},
    }


def test_static_members_keep_their_numbers_whatever_the_member_ids() -> None:
    def members(suffix: str) -> list[Member]:
        return [Member(f"{name}-{suffix}", Subscription(["a"]), name) for name in ("west", "east")]

    first = _assign(Cluster(a=4), members("1"))
    second = _assign(Cluster(a=4), members("2"))
    assert first["east-1"] == second["east-2"] and first["west-1"] == second["west-2"]


def test_members_subscribing_to_different_topics_still_get_every_partition() -> None:
    members = [Member("m0", Subscription(["a"])), Member("m1", Subscription(["a", "b"]))]
    owned = _assign(Cluster(a=2, b=2), members)
    assert owned["m1"] >= {("b", 0), ("b", 1)}
    everything = sorted(tp for tps in owned.values() for tp in tps)
    assert everything == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]

"""Group assignment that keeps partition p of every input topic on one instance.

With several input topics, the state of partition p of each of them lives in the same changelog
partition p (see `anomstream.stream.checkpoint`), and the service owns state per partition
*number*. Kafka's default range assignor splits each topic on its own: with topics of 2 and 5
partitions and two instances, A-1 goes to one and B-1 to the other, which would then both
restore and write changelog partition 1, and an instance that keeps A-1 but loses B-1 would keep
B's machines in memory and use them, stale, if B-1 ever came back. Assigning by partition number
makes all of that impossible: an instance owns changelog partition p exactly when it owns
partition p of every input topic that has one.

Numbers go round-robin over the members (static members first, then by id, so the assignment
is stable across restarts). All members normally subscribe to the same topics; if they do not
(a mixed deployment), a topic's partition goes to the number's owner when it subscribes to the
topic, else round-robin among the topic's subscribers: every partition is still consumed, but
co-partitioning cannot hold for that topic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kafka.coordinator.assignors.abstract import (
    AbstractPartitionAssignor,
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

__all__ = ["CoPartitionedAssignor"]


class CoPartitionedAssignor(AbstractPartitionAssignor):
    """Partition number p of every subscribed topic to the same member."""

    name = "anomstream-copartitioned"
    version = 0

    def assign(self, cluster: Any, members: Any) -> dict[str, ConsumerProtocolAssignment]:
        order = [m.member_id for m in sorted(members, key=_member_order)]
        subscribed = {m.member_id: set(m.metadata.topics) for m in members}
        topics = sorted(set().union(*subscribed.values())) if subscribed else []
        counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
        subscribers = {t: [m for m in order if t in subscribed[m]] for t in topics}
        assignment: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in order}
        for p in range(max(counts.values(), default=0)):
            owner = order[p % len(order)]
            for topic in topics:
                if p >= counts[topic]:
                    continue
                if topic not in subscribed[owner]:  # a mixed group: see the module docstring
                    owner_here = subscribers[topic][p % len(subscribers[topic])]
                else:
                    owner_here = owner
                assignment[owner_here][topic].append(p)
        return {
            m: ConsumerProtocolAssignment(self.version, sorted(assignment[m].items()), b"")
            for m in order
        }

    def metadata(self, topics: Any) -> ConsumerProtocolSubscription:
        return ConsumerProtocolSubscription(self.version, list(topics), b"")

    def on_assignment(self, assignment: Any, generation: Any) -> None:
        pass  # stateless: the assignment depends only on the members and the topics


def _member_order(member: Any) -> tuple[bool, str, str]:
    instance = getattr(member, "group_instance_id", None)
    return (instance is None, instance or "", member.member_id)

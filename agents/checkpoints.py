"""Checkpoint tables for brains kept per partition of the topic they learn from."""

from __future__ import annotations

from typing import Any

import faust

from streams.app import DLQ_MAX_MESSAGE_BYTES, app, settings

__all__ = ["CHECKPOINT_MAX_BYTES", "PartitionTable", "partition_table"]

# The changelog topic accepts messages as large as the DLQ's (the producer's limit too);
# a checkpoint leaves room for the record's key and framing.
CHECKPOINT_MAX_BYTES = DLQ_MAX_MESSAGE_BYTES - 64 * 1024


class PartitionTable(faust.Table):
    """A table keyed by partition number (``b"3"``): an entry lives on that changelog partition.

    Faust's default writes an entry to the partition of the event being processed, which a
    timer has not; ``use_partitioner`` hashes the key, which would not land on ``p``.
    """

    def partition_for_key(self, key: Any) -> int:
        return int(key)


def partition_table(name: str, help: str) -> PartitionTable:
    """Declare a table holding one brain's state per partition, as large as a DLQ message."""
    return app.tables.add(
        PartitionTable(
            app,
            name=name,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            extra_topic_configs={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)},
            beacon=app.tables.beacon,
            help=help,
        )
    )

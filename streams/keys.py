"""Record keys and partitions: which declarations must meet in one worker.

A worker's detectors only see the partitions it owns, so every series, rollups
included, must be complete within one partition. Declarations are keyed by

* ``T<tier>`` for goods on the Common High Priority List: all Tier-1 chips, from
  every origin to every destination, whatever their HS6 code, add up in one place
  (the ``tier`` rollup and its transit-country view);
* their HS2 chapter otherwise: every HS6 product, HS4 heading and HS2 chapter of
  goods outside the list, from every origin, meet in one partition.

So every configured rollup is complete where its parts land (no per-partition
partials): a CHPL code counts towards its HS6 and its tier; HS4/HS2 series hold the
goods outside the list (:mod:`streams.series`). Both legs of a re-export (DE->KG,
then KG->RU, same product) share a key, which the pass-through detector needs.

The price is coarser keys: about a hundred chapters and six tiers instead of
thousands of HS6 codes, so a big chapter (84, 85, 87) weighs on one partition. The
key spreads work across partitions, not within one; the worker's throughput per
partition is measured in ``bench/``.

>>> partition_key("85423190"), partition_key("09011100"), partition_key("851762")
(b'T1', b'09', b'T2')
>>> record_key(b'{"hs_code":"84821010","x":1}')
b'T3B'
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2

from detectors.reference import chpl_tier

__all__ = ["partition_key", "record_key", "partition_for"]


def partition_key(hs_code: str) -> bytes:
    """The Kafka key of a declaration with this CN8/HS6 code."""
    tier = chpl_tier(hs_code)
    return f"T{tier}".encode() if tier is not None else hs_code[:2].encode()


def record_key(raw: bytes) -> bytes:
    """The key for raw record bytes, found without a full decode; b"" if there is no HS code.

    A record without a usable key still goes to Kafka (unkeyed) and is dead-lettered
    by the worker with its reason.
    """
    marker = raw.find(b'"hs_code"')
    if marker < 0:
        return b""
    start = raw.find(b'"', raw.find(b":", marker) + 1) + 1
    code = raw[start : start + 8].split(b'"', 1)[0] if start > 0 else b""
    if len(code) < 6 or not code[:6].isdigit():
        return b""
    return partition_key(code.decode("ascii"))


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a keyed record (murmur2, as kafka-python and Java)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions

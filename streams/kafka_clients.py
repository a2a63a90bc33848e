"""Connection settings for every Kafka client the project builds, from one place.

The worker (aiokafka), the tooling (kafka-python: topics, produce, tail) and the
tests all connect through these helpers, so a cluster's address and (later) its
security settings are read from :class:`~streams.config.KafkaSettings` once.
"""

from __future__ import annotations

from typing import Any

from streams.config import KafkaSettings

__all__ = ["aiokafka_kwargs", "kafka_python_kwargs", "bootstrap_list"]


def bootstrap_list(kafka: KafkaSettings) -> list[str]:
    """``"a:9092, b:9092"`` -> ``["a:9092", "b:9092"]``."""
    return [host.strip() for host in kafka.bootstrap_servers.split(",") if host.strip()]


def aiokafka_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments shared by AIOKafkaConsumer/AIOKafkaProducer/AIOKafkaAdminClient."""
    return {"bootstrap_servers": bootstrap_list(kafka)}


def kafka_python_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's KafkaConsumer/KafkaProducer/KafkaAdminClient."""
    return {"bootstrap_servers": bootstrap_list(kafka)}

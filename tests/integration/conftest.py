"""Fixtures for tests that need the real Kafka broker.

``kafka_bootstrap`` starts the project's own local single-node broker through
``streams.kafka_local.start()`` (or uses ``TRADEWATCH_BOOTSTRAP_SERVERS`` when
set). If the broker was already running when the session began (as under
``make test``, whose scripts/run-tests.sh owns its lifecycle), it is left
running afterwards; if this session started it, this session stops it.

A broker that cannot be started or reached is an error for every test that
needs it: these tests fail, they are never skipped.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from streams import kafka_local


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = kafka_local.external_bootstrap()
    if external:
        yield kafka_local.start(timeout=60)
        return
    was_running = bool(kafka_local.status()["running"])
    bootstrap = kafka_local.start(timeout=120)
    try:
        yield bootstrap
    finally:
        if not was_running:
            kafka_local.stop()


@pytest.fixture
def unique_topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh ``tw-test-<hex>-`` prefix; topics named with it are deleted after the test."""
    prefix = f"tw-test-{uuid.uuid4().hex[:12]}-"
    yield prefix
    from kafka.admin import KafkaAdminClient

    from streams.topics import delete_topics

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tw-test-cleanup")
        try:
            leftovers = [t for t in admin.list_topics() if t.startswith(prefix)]
        finally:
            admin.close()
        delete_topics(kafka_bootstrap, leftovers)

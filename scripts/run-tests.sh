#!/usr/bin/env bash
# Run the whole test suite (unit + integration + prometheus) against the real
# local Kafka broker. `make test` bootstraps first (venv, broker jars,
# Prometheus); this script only manages the broker's lifecycle:
#   - starts it (python -m streams.kafka_local start; a no-op if it already runs,
#     and with TRADEWATCH_BOOTSTRAP_SERVERS set it only checks that cluster),
#   - runs pytest with any arguments given,
#   - stops the broker on exit only if this script started it,
#   - exits with pytest's exit code (5, "no tests collected", is a failure too).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python

started_here=0
if [ -z "${TRADEWATCH_BOOTSTRAP_SERVERS:-}" ]; then
    if ! "$PY" -c 'import sys; from streams import kafka_local as k; sys.exit(0 if k.status()["running"] else 1)'; then
        started_here=1
    fi
fi

stop_broker() {
    if [ "$started_here" = 1 ]; then
        # quiet, so pytest's summary stays the last line of the output
        "$PY" -m streams.kafka_local stop >/dev/null 2>&1 || echo "run-tests: stopping the broker failed" >&2
    fi
}
# Set before starting, so a start that times out with the JVM still alive is cleaned up too.
trap stop_broker EXIT

if ! "$PY" -m streams.kafka_local start --timeout 120; then
    echo "run-tests: the Kafka broker did not start; integration tests cannot run" >&2
    exit 1
fi

"$PY" -m pytest -q "$@"
rc=$?
exit "$rc"

#!/usr/bin/env bash
# Run the whole test suite (unit + integration + prometheus) against the real
# local Kafka broker. `make test` bootstraps first (venv, broker jars,
# Prometheus); this script only manages the broker's lifecycle:
#   - starts it (python -m streams.kafka_local start; a no-op if it already runs,
#     and with TRADEWATCH_BOOTSTRAP_SERVERS set it only checks that cluster),
#   - runs pytest: with arguments, once with them; without, the whole suite in
#     three parallel lanes (fault tests that kill + unit tests, the other fault
#     tests, the other integration + Prometheus tests),
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

if [ "$#" -gt 0 ]; then
    # a selection given on the command line: one pytest run, as asked
    "$PY" -m pytest -q "$@"
    exit $?
fi

# The whole suite runs in three lanes at once, about equal in length on a 2-core
# machine: the fault tests spend most of their time waiting (worker start, quiet
# periods, a broker restart), so they overlap well with CPU-bound tests. Every
# selection is a pytest run of its own, with its own temporary directory (pytest's
# numbered-dir cleanup must not reach another run's) and log; the logs are printed
# whole when all lanes are done, so a failure reads as it would from a single run.
logs=var/test-logs
rm -rf "$logs" var/test-tmp
mkdir -p "$logs" var/test-tmp
run() {
    local name=$1
    shift
    "$PY" -m pytest -q -p no:cacheprovider --durations=8 --basetemp="var/test-tmp/$name" "$@" \
        >"$logs/$name.log" 2>&1
    echo $? >"$logs/$name.rc"
}
runs=(faults-kill unit faults-other integration)
{ run faults-kill -m "faults" -k "kill"; run unit -m "not integration and not prometheus and not faults"; } &
run faults-other -m "faults" -k "not kill" &
run integration -m "(integration or prometheus) and not faults" &
wait

rc=0
for name in "${runs[@]}"; do
    code=$(cat "$logs/$name.rc" 2>/dev/null || echo 1)
    echo "===== $name: pytest exit $code ====="
    cat "$logs/$name.log"
    # 5 = no tests collected: a selection that selects nothing is broken too
    if [ "$code" != 0 ]; then rc=1; fi
done
exit "$rc"

# tradewatch: every target bootstraps what it needs and is safe to run again.
# State that is not source (venv, Kafka jars, broker data, logs) lives under
# .venv/ and var/, both git-ignored.

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
# the editable install maps each top-level package when it is made: a new package
# (a new */__init__.py) must re-make it, like a new pin does
STAMP      := $(VENV)/.installed-$(shell (cat requirements.lock pyproject.toml; ls */__init__.py) | cksum | cut -d' ' -f1)

# the native close (native/, Rust): rebuilt when its sources or pins change
NATIVE_SO  := streams/tradewatch_native.so.stamp

.PHONY: help venv native kafka-jars prometheus bootstrap demo test test-unit kafka-start kafka-stop bench nab evaluate clean

help:
	@echo "make demo   - start local Kafka, a worker and a generated stream with an injected spike; Ctrl-C stops"
	@echo "make test   - bootstrap, start local Kafka, run unit + integration tests, stop Kafka"

venv: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

native: $(NATIVE_SO)
$(NATIVE_SO): $(STAMP) native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs) scripts/build-native.sh
	bash scripts/build-native.sh
	@touch $@

kafka-jars: venv
	$(PY) -m streams.kafka_local fetch

prometheus:
	bash scripts/install-prometheus.sh

bootstrap: venv native kafka-jars prometheus

demo: bootstrap
	$(PY) -m streams.cli demo

test: bootstrap
	bash scripts/run-tests.sh

test-unit: venv native
	$(PY) -m pytest -q -m "not integration and not prometheus"

kafka-start: kafka-jars
	$(PY) -m streams.cli kafka start

kafka-stop: venv
	$(PY) -m streams.cli kafka stop

nab: venv
	$(PY) -m bench.nab --out var/nab-results

clean:
	-$(PY) -m streams.cli kafka stop
	rm -rf var

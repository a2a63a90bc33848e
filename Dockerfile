# The tradewatch image: worker, topic tool and generator (docker-compose.yml).
# Pinned base; dependencies from requirements.lock first (cached layer), then the
# project itself, installed editable like `make venv` so deploy/tradewatch.toml
# and the package data resolve relative to /app.
FROM rust:1.83.0-slim-bookworm AS native
# the native close (native/): a Rust library the Python runtime imports; PyO3 asks a
# Python 3.11 interpreter for its configuration (the module links no libpython)
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native ./native
RUN PYO3_PYTHON=python3 cargo build --release --locked --manifest-path native/Cargo.toml

FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY bench ./bench
COPY deploy ./deploy
COPY --from=native /src/native/target/release/libtradewatch_native.so ./streams/tradewatch_native.cpython-311-x86_64-linux-gnu.so
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app tradewatch \
    && mkdir -p /app/var \
    && chown tradewatch /app/var

USER tradewatch
# faust's web server (/metrics); bound to 0.0.0.0 only when TRADEWATCH_WEB_HOST says so
EXPOSE 6066
CMD ["tradewatch", "--config", "deploy/tradewatch.toml", "worker"]

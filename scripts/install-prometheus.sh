#!/usr/bin/env bash
# Install Prometheus and promtool from Debian's packages, for the rule and
# dashboard tests (tests/prometheus) and for local runs.
#
# Idempotent and quiet when both binaries are already on PATH. Works with and
# without systemd: the package's maintainer scripts are kept from starting the
# service (policy-rc.d), and if a systemd is running and the unit got started or
# enabled anyway, it is stopped and disabled. tradewatch's tests start their own
# Prometheus on a free loopback port; a system-wide one on :9090 is not wanted.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

echo "install-prometheus: installing Debian's prometheus package (brings promtool)" >&2

# policy-rc.d exit code 101 = "action not allowed": invoke-rc.d and
# deb-systemd-invoke then skip starting services during the install. Keep a
# pre-existing policy-rc.d untouched.
POLICY=/usr/sbin/policy-rc.d
ours_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
    ours_policy=1
fi
cleanup() {
    if [ "$ours_policy" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

# apt-get update once per install: stale lists would make the install 404.
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus >/dev/null

# Belt and braces when systemd is actually running (not in containers/CI here).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
# Without systemd, a sysvinit script may have been run despite policy-rc.d on
# some images; stop only the package's own daemon via its pidfile.
if [ -f /run/prometheus.pid ]; then
    $SUDO kill "$(cat /run/prometheus.pid)" 2>/dev/null || true
fi

for bin in prometheus promtool; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "install-prometheus: $bin is still missing after the install" >&2
        exit 1
    fi
done
echo "install-prometheus: $(prometheus --version 2>&1 | head -n1)" >&2

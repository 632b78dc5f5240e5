#!/usr/bin/env bash
# The binary upgrade under load, on a release build: crates/holdfast/tests/upgrade.rs with
# HOLDFAST_BIN pointing at target/release/holdfast (the clients stay the test's). Each run
# upgrades ${UPGRADES} times in a row while two HTTP/1.1 keep-alive clients, a client with a
# new connection per request, HTTP/2 over TLS, 1 MiB uploads, a 100 MiB download and a
# WebSocket keep going, and prints: answers; refused, reset and failed (each must be 0);
# the HTTP/2 requests not yet sent when a GOAWAY came, sent again (RFC 9113 §8.7); the
# time from the signal to the new process serving (min, median, max); and the longest any
# client waited for an answer. Loopback only; every process is the test's, stopped by PID.
#
# No peer runs beside it: nginx's binary upgrade (USR2, WINCH, QUIT) and HAProxy's reload
# (-sf with expose-fd listeners) need their own choreography, which this script does not
# drive yet.
#
# Usage: bench/upgrade.sh            (RUNS=3 UPGRADES=10 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
UPGRADES=${UPGRADES:-10}
cargo build --release --locked -q -p holdfast
cargo test --locked -q -p holdfast --test upgrade --no-run 2>/dev/null
for run in $(seq 1 "$RUNS"); do
  printf 'run %s: ' "$run"
  HOLDFAST_BIN="$PWD/target/release/holdfast" UPGRADES="$UPGRADES" \
    cargo test --locked -q -p holdfast --test upgrade ten_upgrades -- --nocapture 2>&1 | grep '^upgrades:' \
    || { echo "failed"; exit 1; }
done

#!/usr/bin/env bash
# Cluster mode's figures (issue 20), from real servers on 127.0.0.1: a 3-server NATS JetStream
# cluster (nats-server 2.15), Debian's docker-registry 2.8, three `wasmzip serve --cluster` nodes and
# HAProxy in front, as tests/cluster.rs starts them (its `cluster_figures` benchmark, ignored by
# `cargo test`).
#
# Usage: bash bench/cluster.sh
#
#   1. DEPLOYS deploys of a small package whose code every node compiles (each version's component
#      differs by a custom section), through the three nodes in turn: the deploy call itself, and
#      from its answer to all three nodes serving the new version (polling each node's admin API).
#      p50 and p99. Goal: p99 <= 500 ms.
#   2. ROLLBACKS rollbacks: from the answer to all three serving the previous version.
#   3. A large component (guests/big-http, megabytes of code): its cold compile on every node.
#   4. Requests/s (wrk, 16 connections, DURATION_S s) through HAProxy over three nodes against
#      HAProxy over one node alone, on the same two cores; and one node in cluster mode against one
#      in local mode, the same package. ROUNDS interleaved rounds; ratios are medians of per-round
#      ratios. Goal: cluster / local >= 0.98.
#   5. Recovery after all of NATS is killed and started again: until every node is synchronised,
#      and until a deploy is accepted.
#
# Installs wrk (apt-get) when missing. Knobs: DEPLOYS (50), ROLLBACKS (20), ROUNDS (5), DURATION_S (5).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "cluster.sh: installing wrk" >&2
    apt_get="apt-get"
    [ "$(id -u)" -eq 0 ] || apt_get="sudo apt-get"
    $apt_get install -y --no-install-recommends wrk >/dev/null
fi
bash scripts/nats-server.sh >/dev/null
command -v haproxy >/dev/null && command -v docker-registry >/dev/null \
    || { echo "cluster.sh: needs haproxy and docker-registry (bash .ci/setup installs them)" >&2; exit 1; }

echo "# bench/cluster.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
echo "# DEPLOYS=${DEPLOYS:-50} ROLLBACKS=${ROLLBACKS:-20} ROUNDS=${ROUNDS:-5} DURATION_S=${DURATION_S:-5}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --locked --features ort --test cluster -- --ignored --exact cluster_figures --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
grep -E '^\|' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "cluster.sh: the benchmark failed (status $status):" >&2
    tail -40 "$log" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Serving WASI 0.3 handlers (issue 18): `wasmzip serve` with reused 0.3 instances against a native
# hyper server, `wasmtime serve` 50.0.1 running the same components, Node.js, and wasmzip's own
# WASI 0.2 serving, all on this host, over loopback, one server at a time.
#
# Usage: bash bench/serve-p3.sh
#
# ROUNDS rounds with the servers interleaved; figures are medians over the rounds, and every ratio
# is between medians of the same run.
#
#   a. hello: hello-http-p3 (0.3, reused) under wasmzip and wasmtime serve, native-hello, and
#      hello-http (0.2, a fresh instance per request) under wasmzip: requests/s at CONNS connections,
#      p50 at one connection. The ceiling a reused 0.3 instance sets: the CPU time Wasmtime alone
#      spends per request (crates/server/examples/reused_instance_cost.rs: ProxyHandler, one thread,
#      no sockets), F, against the host's CPU time per native request, T = CPUs / native req/s:
#      T / (T + F) of native at most.
#   b. json-transform, 100 KB body: json-transform-p3 (typed serde, as a user writes it; 0.3, reused)
#      under wasmzip and wasmtime serve, its 0.2 twin json-transform-serde (a fresh instance per
#      request) and json-transform (the hand-tuned scanner, 0.2) under wasmzip, and Node.js: p50 at one connection, requests/s at CONNS connections, server CPU per request.
#      The guest's own compute per body, measured alone: reused_instance_cost with BODY=the body
#      (the same reused instance, no sockets, no HTTP parsing); p50 at one connection minus that is
#      the platform's overhead per request (the 0.2 twin runs the same transform code).
#   c. Memory: VmRSS of `wasmzip serve` with RSS_FUNCS 0.3 functions deployed, idle, and after a
#      burst of 20 requests to each.
#
# Knobs (environment): WARMUP_S (3), DURATION_S (10), CONNS (16), THREADS (2), BODY_KB (100),
# ROUNDS (3), RSS_FUNCS (100), BUILD (1: build wasmzip, guests, native-hello and the cost example
# first), WASMTIME (the wasmtime 50.0.1 binary; default `wasmtime` on PATH; without it those rows are
# reported as unavailable), BENCH_TMPDIR.
set -euo pipefail
export LC_ALL=C

WARMUP_S=${WARMUP_S:-3}
DURATION_S=${DURATION_S:-10}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
BODY_KB=${BODY_KB:-100}
ROUNDS=${ROUNDS:-3}
RSS_FUNCS=${RSS_FUNCS:-100}
BUILD=${BUILD:-1}
WASMTIME=${WASMTIME:-wasmtime}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMZIP="$ROOT/target/release/wasmzip"
REUSED_COST="$ROOT/target/release/examples/reused_instance_cost"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"
NATIVE_HELLO="$ROOT/bench/servers/native-hello/target/release/native-hello"
NODE_SERVER="$ROOT/bench/servers/json-transform.js"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

command -v wrk >/dev/null 2>&1 || die "wrk is not installed (apt-get install wrk)"
command -v node >/dev/null 2>&1 || die "node is not installed"
HAVE_WASMTIME=0
[[ $("$WASMTIME" --version 2>/dev/null) == "wasmtime 50.0.1"* ]] && HAVE_WASMTIME=1

if ((BUILD)); then
    log "building wasmzip, the guests, native-hello and reused_instance_cost (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin wasmzip -p wasmzip && cargo build --release --quiet -p wasmzip-server --example reused_instance_cost) || die "build failed"
    (cd "$ROOT/guests" && cargo build --release --quiet) || die "guest build failed"
    cargo build --release --quiet --manifest-path "$ROOT/bench/servers/native-hello/Cargo.toml" || die "native-hello build failed"
fi
for f in "$WASMZIP" "$REUSED_COST" "$NATIVE_HELLO" "$GUESTS/hello_http_p3.wasm" "$GUESTS/json_transform_p3.wasm" "$GUESTS/json_transform_serde.wasm"; do
    [[ -e $f ]] || die "missing $f (run with BUILD=1)"
done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/wasmzip-serve-p3.XXXXXX")
PIDS=()
PROBLEMS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

"$WASMZIP" keygen "$TMP/dev" >/dev/null
pack_http hello-p3 "$GUESTS/hello_http_p3.wasm" / "$TMP/hello-p3.wasmzip"
pack_http hello-p2 "$GUESTS/hello_http.wasm" / "$TMP/hello-p2.wasmzip"
pack_http json-p3 "$GUESTS/json_transform_p3.wasm" / "$TMP/json-p3.wasmzip"
pack_http json-p2 "$GUESTS/json_transform.wasm" / "$TMP/json-p2.wasmzip"
pack_http json-serde-p2 "$GUESTS/json_transform_serde.wasm" / "$TMP/json-serde-p2.wasmzip"
json_body "$BODY_KB" "$TMP/body.json"
post_script "$TMP/body.json" "$TMP/post.lua"
BODY_BYTES=$(stat -c %s "$TMP/body.json")

# serve_wasmzip NAME PACKAGE: sets PID and URL.
serve_wasmzip() {
    local port
    port=$(free_port)
    start "wasmzip serve ($1)" "$TMP/$1.log" "$WASMZIP" serve "$2" --trust "$TMP/dev.pub" --listen "127.0.0.1:$port" \
        --data-dir "$TMP/data-$1-$ROUND" --cache-dir "$TMP/cache"
    PID=$SERVER_PID URL="http://127.0.0.1:$port/"
    wait_line "serving on" "$TMP/$1.log" "$PID" 300 || die "wasmzip serve ($1) did not start"
}
# serve_wasmtime NAME WASM: sets PID and URL; returns 1 when wasmtime is unavailable.
serve_wasmtime() {
    ((HAVE_WASMTIME)) || return 1
    local port
    port=$(free_port)
    start "wasmtime serve ($1)" "$TMP/$1.log" "$WASMTIME" serve -S cli=y --addr "127.0.0.1:$port" "$2"
    PID=$SERVER_PID URL="http://127.0.0.1:$port/"
    wait_http "$URL" "$PID" "$TMP/$1.log" 300 || die "wasmtime serve ($1) did not start"
}

declare -A SAMP
# sample KEY: records what `measure` just set.
sample() {
    SAMP[$1.rps]+="$M_RPS " SAMP[$1.p50]+="$M_P50 " SAMP[$1.cpu]+="$M_CPU_US "
}
med() { median ${SAMP[$1.$2]}; }

run_one() {   # run_one KEY KIND NAME ARTIFACT [WRK-ARGS...]
    local key=$1 kind=$2 name=$3 artifact=$4
    shift 4
    case $kind in
        wasmzip) serve_wasmzip "$name" "$artifact" ;;
        wasmtime) serve_wasmtime "$name" "$artifact" || return 0 ;;
        native) local port; port=$(free_port); start native "$TMP/native.log" env PORT="$port" "$NATIVE_HELLO"; PID=$SERVER_PID URL="http://127.0.0.1:$port/"; wait_http "$URL" "$PID" "$TMP/native.log" 60 || die "native-hello did not start" ;;
        node) local port; port=$(free_port); start node "$TMP/node.log" env PORT="$port" node "$NODE_SERVER"; PID=$SERVER_PID URL="http://127.0.0.1:$port/"; wait_http "$URL" "$PID" "$TMP/node.log" 60 || die "node did not start" ;;
    esac
    measure "$name (round $ROUND)" "$URL" "$@"
    sample "$key"
    stop "$PID"
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND of $ROUNDS"
    run_one n native native-hello -
    run_one wh3 wasmzip hello-p3 "$TMP/hello-p3.wasmzip"
    run_one th3 wasmtime wasmtime-hello-p3 "$GUESTS/hello_http_p3.wasm"
    run_one wh2 wasmzip hello-p2 "$TMP/hello-p2.wasmzip"
    run_one wj3 wasmzip json-p3 "$TMP/json-p3.wasmzip" -s "$TMP/post.lua"
    run_one tj3 wasmtime wasmtime-json-p3 "$GUESTS/json_transform_p3.wasm" -s "$TMP/post.lua"
    run_one wjs2 wasmzip json-serde-p2 "$TMP/json-serde-p2.wasmzip" -s "$TMP/post.lua"
    run_one wj2 wasmzip json-p2 "$TMP/json-p2.wasmzip" -s "$TMP/post.lua"
    run_one node node node-json - -s "$TMP/post.lua"
done

log "reused_instance_cost: one thread, no sockets"
COST=$("$REUSED_COST" "$GUESTS/hello_http_p3.wasm" 50000)
log "$COST"
F_US=$(sed -n 's/.*cpu_us=\([0-9.]*\).*/\1/p' <<<"$COST")
CPUS=$(nproc)
T_US=$(calc "$CPUS * 1000000 / $(med n rps)")
CEILING=$(calc "$T_US / ($T_US + $F_US)" %.3f)
JCOST=$(BODY="$TMP/body.json" "$REUSED_COST" "$GUESTS/json_transform_p3.wasm" 2000)
log "$JCOST"
J_US=$(sed -n 's/.*total_us=\([0-9.]*\).*/\1/p' <<<"$JCOST")

# c. Memory with RSS_FUNCS 0.3 functions.
log "memory: $RSS_FUNCS 0.3 functions"
port=$(free_port) aport=$(free_port)
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/token"
start "wasmzip serve (rss)" "$TMP/rss.log" "$WASMZIP" serve --trust "$TMP/dev.pub" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$aport" --admin-token-file "$TMP/token" --data-dir "$TMP/data-rss" --cache-dir "$TMP/cache"
RSS_PID=$SERVER_PID
wait_line "serving on" "$TMP/rss.log" "$RSS_PID" 120 || die "the memory server did not start"
sleep 1
RSS0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RSS_PID/status")
for ((i = 0; i < RSS_FUNCS; i++)); do
    name=$(printf 'f%03d' "$i")
    pack_http "$name" "$GUESTS/hello_http_p3.wasm" "/$name" "$TMP/$name.wasmzip"
    "$WASMZIP" deploy "$TMP/$name.wasmzip" --server "http://127.0.0.1:$aport" --token-file "$TMP/token" >/dev/null
done
sleep 2
RSS_IDLE=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RSS_PID/status")
for ((i = 0; i < RSS_FUNCS; i++)); do
    for ((j = 0; j < 20; j++)); do printf 'http://127.0.0.1:%s/f%03d\n' "$port" "$i"; done
done | xargs -P 8 -n 20 curl -s -o /dev/null >/dev/null
RSS_BURST=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RSS_PID/status")
sleep 3
RSS_AFTER=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RSS_PID/status")
stop "$RSS_PID"

ratio() { calc "$1 / $2" %.2f; }
echo
echo "## Serving WASI 0.3 (bench/serve-p3.sh), medians of $ROUNDS rounds, $CONNS connections, ${DURATION_S}s runs"
echo
echo "| server | req/s (c$CONNS) | p50 c1 (µs) | CPU µs/request (c$CONNS) |"
echo "|---|---|---|---|"
for k in n wh3 th3 wh2 wj3 tj3 wjs2 wj2 node; do
    [[ -n ${SAMP[$k.rps]:-} ]] || continue
    case $k in
        n) label="native-hello (hyper)" ;; wh3) label="wasmzip hello-http-p3 (0.3, reused)" ;; th3) label="wasmtime serve 50.0.1 hello-http-p3" ;;
        wh2) label="wasmzip hello-http (0.2, fresh)" ;; wj3) label="wasmzip json-transform-p3 (serde, 0.3, reused)" ;;
        tj3) label="wasmtime serve 50.0.1 json-transform-p3" ;; wjs2) label="wasmzip json-transform-serde (serde, 0.2, fresh)" ;; wj2) label="wasmzip json-transform (hand-tuned scanner, 0.2)" ;; node) label="Node.js json-transform.js" ;;
    esac
    echo "| $label | $(calc "$(med $k rps)" %.0f) | $(med $k p50) | $(med $k cpu) |"
done
echo
echo "Ratios (same run):"
echo "- hello 0.3 / native req/s: $(ratio "$(med wh3 rps)" "$(med n rps)") (ceiling set by a reused 0.3 instance: $CEILING; F = $F_US µs, T = $T_US µs)"
if [[ -n ${SAMP[th3.rps]:-} ]]; then
    echo "- hello 0.3 / wasmtime serve: req/s $(ratio "$(med wh3 rps)" "$(med th3 rps)"), p50 $(ratio "$(med wh3 p50)" "$(med th3 p50)")"
    echo "- json-transform-p3 / wasmtime serve: req/s $(ratio "$(med wj3 rps)" "$(med tj3 rps)"), p50 $(ratio "$(med wj3 p50)" "$(med tj3 p50)")"
fi
echo "- json-transform-p3 (serde) / Node: p50 $(ratio "$(med wj3 p50)" "$(med node p50)"), req/s $(ratio "$(med wj3 rps)" "$(med node rps)")"
echo "- json-transform-p3: the guest's own compute per body, alone: $J_US µs; p50 at one connection $(med wj3 p50) µs, so the platform's overhead per request is $(calc "$(med wj3 p50) - $J_US" %.0f) µs"
echo "- json-transform-serde (serde, 0.2) / Node: p50 $(ratio "$(med wjs2 p50)" "$(med node p50)"), req/s $(ratio "$(med wjs2 rps)" "$(med node rps)"); overhead per request over the same compute: $(calc "$(med wjs2 p50) - $J_US" %.0f) µs"
echo "- json-transform (scanner, 0.2) / Node: p50 $(ratio "$(med wj2 p50)" "$(med node p50)"), req/s $(ratio "$(med wj2 rps)" "$(med node rps)")"
echo "- request body: $BODY_BYTES bytes"
echo "- memory, $RSS_FUNCS 0.3 functions: $RSS0 KiB empty, $RSS_IDLE KiB idle after deploying ($(calc "($RSS_IDLE - $RSS0) / $RSS_FUNCS" %.0f) KiB per function), $RSS_BURST KiB just after 20 requests to each, $RSS_AFTER KiB 3 s later"
for p in "${PROBLEMS[@]}"; do echo "- problem: $p"; done

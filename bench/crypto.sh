#!/usr/bin/env bash
# Host-held key benchmarks: guest crypto through wasmzip against the same operations done natively.
#
# Usage: bash bench/crypto.sh
#
# For each case, the `crypto_bench` guest (guests/crypto-bench) runs as a bare component under
# `wasmzip run`, calling the host's `wasmzip:crypto` imports, and the native baseline
# (crates/keystore/examples/crypto_baseline.rs) runs the same loop calling the crypto crates or the
# PKCS#11 module directly. Both time only their loop and print the same line
# (`sign ops=N secs=S per_sec=R` / `seal size=SIZE ops=N secs=S mb_per_sec=R per_sec=R`).
# Each pair runs ROUNDS times, alternating which goes first; the better figure of each side counts.
#
# Cases (goal = wasmzip / native):
#   software keystore (encrypted key files, passphrase file):
#     Ed25519 sign, 64-byte message, SIGN_N ops            ops/s   goal >= 0.5
#     AES-256-GCM seal 1 KiB, SEAL_SMALL_N ops             ops/s   no goal (per-call overhead)
#     AES-256-GCM seal 1 MiB, SEAL_BIG_N ops               MB/s    goal >= 0.8
#   PKCS#11 (a SoftHSM2 token made in the temporary directory):
#     Ed25519 sign (CKM_EDDSA), PKCS11_SIGN_N ops          ops/s   goal >= 0.9
#     AES-256-GCM seal 1 KiB (CKM_AES_GCM), SEAL_SMALL_N   ops/s   no goal (per-call overhead)
#     AES-256-GCM seal 1 MiB, SEAL_BIG_N ops               MB/s    goal >= 0.9
#
# Knobs (environment):
#   SIGN_N         software signs per run                       (default 20000)
#   PKCS11_SIGN_N  PKCS#11 signs per run                        (default 5000)
#   SEAL_SMALL_N   1 KiB seals per run                          (default 20000)
#   SEAL_BIG_N     1 MiB seals per run                          (default 300)
#   ROUNDS         runs of each side per case                   (default 2)
#   SKIP_PKCS11    1 = software cases only                      (default 0)
#   BUILD          0 = use what is built, build nothing         (default 1)
#   BENCH_TMPDIR   where the temporary directory is created     (default $TMPDIR or /tmp)
#
# Builds wasmzip, the guests and the baseline example in release mode; installs SoftHSM2 with apt-get
# if /usr/lib/softhsm/libsofthsm2.so is missing. Works in a temporary directory removed on exit.
set -euo pipefail
export LC_ALL=C

SIGN_N=${SIGN_N:-20000}
PKCS11_SIGN_N=${PKCS11_SIGN_N:-5000}
SEAL_SMALL_N=${SEAL_SMALL_N:-20000}
SEAL_BIG_N=${SEAL_BIG_N:-300}
ROUNDS=${ROUNDS:-2}
SKIP_PKCS11=${SKIP_PKCS11:-0}
BUILD=${BUILD:-1}
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
SMALL=1024
BIG=$((1024 * 1024))

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WASMZIP="$ROOT/target/release/wasmzip"
BASELINE="$ROOT/target/release/examples/crypto_baseline"
GUEST="$ROOT/guests/target/wasm32-wasip2/release/crypto_bench.wasm"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# Keystore settings from the caller's environment must not leak into the runs.
unset WASMZIP_KEYSTORE WASMZIP_KEYSTORE_DIR WASMZIP_KEYSTORE_PASSPHRASE_FILE \
    WASMZIP_PKCS11_MODULE WASMZIP_PKCS11_TOKEN WASMZIP_PKCS11_PIN_FILE

# ----------------------------------------------------------------------------------------------------
# Build.

if [[ $BUILD != 0 ]]; then
    log "building wasmzip (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin wasmzip) || die "cargo build --release failed"
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "adding the wasm32-wasip2 target"
        rustup target add wasm32-wasip2 >&2
    fi
    log "building guests (release)"
    (cd "$ROOT/guests" && cargo build --release --quiet) || die "guest build failed"
    log "building the native baseline (release)"
    (cd "$ROOT" && cargo build --release --quiet -p wasmzip-keystore --example crypto_baseline) || die "baseline build failed"
fi
for f in "$WASMZIP" "$BASELINE" "$GUEST"; do
    [[ -f $f ]] || die "missing $f"
done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/wasmzip-crypto-bench.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------------------------------------------
# Helpers.

calc() { awk "BEGIN { printf \"${2:-%.2f}\", ($1) }"; }

# measure VAR METRIC CMD...: runs CMD, finds its `sign ...` / `seal ...` line and sets VAR to the value
# of the field METRIC (per_sec or mb_per_sec). A failure shows CMD's stderr and ends the script.
measure() {
    local var=$1 metric=$2 out line value
    shift 2
    if ! out=$("$@" 2>"$TMP/last.stderr"); then
        cat "$TMP/last.stderr" >&2
        die "failed: $*"
    fi
    line=$(grep -E '^(sign|seal) ' <<<"$out" | tail -n 1 || true)
    [[ -n $line ]] || { printf '%s\n' "$out" >&2; cat "$TMP/last.stderr" >&2; die "no result line from: $*"; }
    value=$(awk -v k="$metric" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) print substr($i, n + 1) } }' <<<"$line")
    [[ $value =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "no $metric in \"$line\" from: $*"
    printf -v "$var" '%s' "$value"
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }

ROWS=()      # table rows
SUMMARY=()   # markdown rows
FAILED=0

# run_case LABEL METRIC UNIT GOAL: runs the commands in W_CMD (wasmzip) and N_CMD (native) ROUNDS
# times each, alternating which goes first, and records the best of each side. GOAL is a minimum
# ratio, or `-` for none.
run_case() {
    local label=$1 metric=$2 unit=$3 goal=$4 r w n best_w=0 best_n=0 ws=() ns=() ratio met goal_text
    log "$label"
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then
            measure w "$metric" "${W_CMD[@]}"
            measure n "$metric" "${N_CMD[@]}"
        else
            measure n "$metric" "${N_CMD[@]}"
            measure w "$metric" "${W_CMD[@]}"
        fi
        ws+=("$w")
        ns+=("$n")
        best_w=$(max "$best_w" "$w")
        best_n=$(max "$best_n" "$n")
    done
    ratio=$(calc "$best_w / $best_n" %.2f)
    if [[ $goal == - ]]; then
        goal_text="-"
        met="-"
    else
        goal_text=">= $goal"
        if [[ $(calc "$ratio >= $goal ? 1 : 0" %d) == 1 ]]; then met=yes; else met=NO; FAILED=1; fi
    fi
    ROWS+=("$(printf '%-40s %16s %16s %7s %8s %5s   %s | %s' "$label" "$best_w $unit" "$best_n $unit" "$ratio" "$goal_text" "$met" "${ws[*]}" "${ns[*]}")")
    SUMMARY+=("| $label | $best_w $unit | $best_n $unit | $ratio | ${goal_text/>=/≥} | $met |")
}

# cases PREFIX SIGN_COUNT BASELINE-ARGS... : the sign and seal cases for one keystore. The keystore
# flags are in KS_FLAGS; BASELINE-ARGS select the native baseline's keystore.
GRANTS=(--grant crypto:key:bench-sign:sign --grant crypto:key:bench-seal:seal)
cases() {
    local prefix=$1 sign_n=$2 sign_goal=$3 big_goal=$4 sign_key=$5 seal_key=$6
    shift 6
    local base=("$BASELINE" "$@")
    W_CMD=("$WASMZIP" run "$GUEST" "${KS_FLAGS[@]}" "${GRANTS[@]}" -- sign bench-sign "$sign_n")
    N_CMD=("${base[@]}" sign ${sign_key:+"$sign_key"} "$sign_n")
    run_case "$prefix Ed25519 sign (64 B)" per_sec ops/s "$sign_goal"
    W_CMD=("$WASMZIP" run "$GUEST" "${KS_FLAGS[@]}" "${GRANTS[@]}" -- seal bench-seal "$SMALL" "$SEAL_SMALL_N")
    N_CMD=("${base[@]}" seal ${seal_key:+"$seal_key"} "$SMALL" "$SEAL_SMALL_N")
    run_case "$prefix AES-256-GCM seal 1 KiB" per_sec ops/s -
    W_CMD=("$WASMZIP" run "$GUEST" "${KS_FLAGS[@]}" "${GRANTS[@]}" -- seal bench-seal "$BIG" "$SEAL_BIG_N")
    N_CMD=("${base[@]}" seal ${seal_key:+"$seal_key"} "$BIG" "$SEAL_BIG_N")
    run_case "$prefix AES-256-GCM seal 1 MiB" mb_per_sec MB/s "$big_goal"
}

create_keys() {
    "$WASMZIP" keys create bench-sign --type ed25519 "${KS_FLAGS[@]}" >&2 || die "wasmzip keys create bench-sign failed"
    "$WASMZIP" keys create bench-seal --type aes256gcm "${KS_FLAGS[@]}" >&2 || die "wasmzip keys create bench-seal failed"
}

# ----------------------------------------------------------------------------------------------------
# Software keystore.

log "software keystore in $TMP/keys"
printf 'crypto bench passphrase %s\n' "$RANDOM$RANDOM" >"$TMP/passphrase"
KS_FLAGS=(--keystore-dir "$TMP/keys" --passphrase-file "$TMP/passphrase")
create_keys
cases software "$SIGN_N" 0.5 0.8 "" "" software

# ----------------------------------------------------------------------------------------------------
# PKCS#11: SoftHSM2.

if [[ $SKIP_PKCS11 == 0 ]]; then
    if [[ ! -f $SOFTHSM_MODULE ]]; then
        log "installing SoftHSM2 (apt-get)"
        sudo=()
        [[ $(id -u) == 0 ]] || sudo=(sudo)
        { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq softhsm2; } >&2 ||
            die "cannot install softhsm2 (or run with SKIP_PKCS11=1)"
        [[ -f $SOFTHSM_MODULE ]] || die "softhsm2 is installed but $SOFTHSM_MODULE is missing"
    fi
    log "SoftHSM2 token \"bench\" in $TMP/tokens"
    mkdir -p "$TMP/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$TMP/tokens" >"$TMP/softhsm2.conf"
    export SOFTHSM2_CONF="$TMP/softhsm2.conf"
    softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >&2 || die "softhsm2-util --init-token failed"
    printf '1234\n' >"$TMP/pin"
    KS_FLAGS=(--keystore pkcs11 --pkcs11-module "$SOFTHSM_MODULE" --pkcs11-token bench --pin-file "$TMP/pin")
    create_keys
    cases PKCS#11 "$PKCS11_SIGN_N" 0.9 0.9 wasmzip:bench-sign:v1 wasmzip:bench-seal:v1 pkcs11 "$SOFTHSM_MODULE" bench 1234
fi

# ----------------------------------------------------------------------------------------------------
# Report.

echo
echo "== Host-held keys: crypto_bench guest under wasmzip vs native (best of $ROUNDS alternating runs each) =="
printf '%-40s %16s %16s %7s %8s %5s   %s\n' "case" "wasmzip" "native" "ratio" "goal" "met" "runs wasmzip | native"
printf '%s\n' "${ROWS[@]}"
echo
echo "| case | wasmzip | native | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
if ((FAILED)); then
    echo
    echo "some goals were NOT met"
fi

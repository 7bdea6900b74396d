#!/usr/bin/env bash
# The orientation classifier on a GPU against the CPU, with a wasmzip built elsewhere with
# `--features cuda` (bench/gpu-bundle.sh makes the bundle this runs from). Downloads nothing, builds
# nothing, writes only a temporary directory; takes a few minutes at most.
#
# Usage: bash gpu.sh                      (inside a bundle made by bench/gpu-bundle.sh), or
#        WASMZIP=path/to/wasmzip PKG=orientation.wasmzip [TRUST=dev.pub] [IMAGES="a.png b.jpg"] bash bench/gpu.sh
#
# 1. CLI: runs `wasmzip run PKG --nn-target cpu -- --repeat REPEAT IMAGES...` (the package's `cli`
#    component, orientation-cli), then the same with `--nn-target gpu` (which fails, never falls back,
#    when no GPU is usable). Prints each image's p50 / min / first inference time on both targets, the
#    largest score difference, and how long each target took to load the model.
# 2. HTTP, when PKG also has an `http` component (orientation, route /classify): `wasmzip serve PKG`
#    on 127.0.0.1 with `--nn-target cpu`, then `gpu`; POSTs each image HTTP_REPEAT times in sequence
#    with curl and prints each image's label and p50 of the guest's inference time and of curl's
#    whole request on both targets; then POSTs the first image PARALLEL_N times, 16 at a time (curl
#    --parallel), and prints how many answered 200 with which label, and the requests per second.
# Every label must agree between the targets (and with the expected one, when a labels.json sits next
# to the images). Exit status: 0 when the GPU runs worked and the labels agree, 1 otherwise.
#
# The first GPU load on a host compiles tract-cuda's kernels with NVRTC, which needs the CUDA 13
# toolkit's headers (`cuda_fp16.h` and CCCL; found under $CUDA_HOME or /usr/local/cuda), and caches
# them under $XDG_CACHE_HOME/tract (else ~/.cache/tract): about 90 s on an H100 host, then under a
# second for every later load. gpu.sh says whether that cache was there.
#
# Environment:
#   WASMZIP   the wasmzip binary (--features cuda)     (default: ./wasmzip next to this script)
#   PKG       the orientation package: cli component, and http for step 2
#                                                      (default: ./orientation.wasmzip next to it)
#   TRUST     public key that signed PKG               (default: ./dev.pub next to it; none: --allow-unsigned)
#   IMAGES    PNG / JPEG files                         (default: ./images/*.png ./images/*.jpg next to it)
#   REPEAT    inferences per image and target, CLI     (default 100)
#   HTTP_REPEAT  requests per image and target, HTTP   (default 30; 0 skips step 2)
#   PARALLEL_N   requests 16 at a time per target      (default 160; 0 skips them)
#   GPU_TARGET   the target compared with cpu          (default gpu; `auto` runs the whole script
#                                                      on a host without a GPU, to try it out)
#   TIMEOUT_S limit per wasmzip run, seconds           (default 300)
#   WASMZIP_LOG  wasmzip's log filter                   (default warn,wasmzip::nn=info: model loading)
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WASMZIP=${WASMZIP:-$HERE/wasmzip}
PKG=${PKG:-$HERE/orientation.wasmzip}
REPEAT=${REPEAT:-100}
HTTP_REPEAT=${HTTP_REPEAT:-30}
PARALLEL_N=${PARALLEL_N:-160}
GPU_TARGET=${GPU_TARGET:-gpu}
TIMEOUT_S=${TIMEOUT_S:-300}
export WASMZIP_LOG=${WASMZIP_LOG:-warn,wasmzip::nn=info}
if [[ -z ${TRUST+x} ]]; then
    TRUST=""
    [[ -f $HERE/dev.pub ]] && TRUST=$HERE/dev.pub
fi
if [[ -z ${IMAGES:-} ]]; then
    IMAGES=$(ls "$HERE"/images/*.png "$HERE"/images/*.jpg 2>/dev/null | tr '\n' ' ')
fi

log() { printf '[gpu] %s\n' "$*" >&2; }
die() { printf '[gpu] error: %s\n' "$*" >&2; exit 1; }

[[ -x $WASMZIP ]] || die "WASMZIP=$WASMZIP is not an executable (build wasmzip with --features cuda)"
[[ -f $PKG ]] || die "PKG=$PKG is not a file (an orientation package with the model)"
[[ -n $IMAGES ]] || die "no images: set IMAGES=\"a.png b.jpg\""
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a whole number >= 1"
[[ $HTTP_REPEAT =~ ^[0-9]+$ ]] || die "HTTP_REPEAT must be a whole number"
[[ $PARALLEL_N =~ ^[0-9]+$ ]] || die "PARALLEL_N must be a whole number"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wasmzip-gpu.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/data" "$TMP/cache"
GUEST_FILES=()
LABELS_JSON=""
for img in $IMAGES; do
    [[ -f $img ]] || die "image $img is not a file"
    cp "$img" "$TMP/data/" || die "cannot copy $img"
    GUEST_FILES+=("/data/$(basename "$img")")
    [[ -f $(dirname "$img")/labels.json ]] && LABELS_JSON=$(dirname "$img")/labels.json
done

# ----------------------------------------------------------------------------------------------------
# The host, for the record.

log "wasmzip: $WASMZIP ($("$WASMZIP" --version 2>/dev/null || echo 'version unknown'))"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/[gpu] GPU: /' >&2
else
    log "nvidia-smi not found"
fi
# tract-cuda (CUDA 13 build) opens these at run time: driver, runtime, NVRTC, cuBLAS, cuDNN.
for lib in libcuda.so.1 libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
    where=$( (ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }'))
    if [[ -z $where ]]; then
        IFS=: read -ra dirs <<<"${LD_LIBRARY_PATH:-}"
        for d in "${dirs[@]}"; do [[ -n $d && -e $d/$lib ]] && { where=$d/$lib; break; }; done
    fi
    log "$(printf '%-18s %s' "$lib" "${where:-NOT FOUND (set LD_LIBRARY_PATH if it is installed elsewhere)}")"
done
# NVRTC compiles tract-cuda's kernels against the toolkit's headers on the first GPU load.
headers=""
for d in ${CUDA_HOME:-} ${CUDA_PATH:-} /usr/local/cuda; do
    for inc in "$d/include" "$d"/targets/*/include; do
        [[ -f $inc/cuda_fp16.h ]] && { headers=$inc; break 2; }
    done
done
log "$(printf '%-18s %s' "cuda_fp16.h" "${headers:-NOT FOUND (the first GPU load needs the CUDA 13 toolkit headers; set CUDA_HOME)}")"
CUBINS="${XDG_CACHE_HOME:-${HOME:-.}/.cache}/tract"
if [[ -d $CUBINS ]]; then
    log "tract-cuda kernel cache: $CUBINS (present: the GPU load should take about a second)"
else
    log "tract-cuda kernel cache: $CUBINS (absent: the GPU load compiles the kernels first, about 90 s on an H100 host)"
fi

# ----------------------------------------------------------------------------------------------------
# Runs.

TRUST_ARGS=(--allow-unsigned)
[[ -n $TRUST ]] && TRUST_ARGS=(--trust "$TRUST")

# run TARGET: runs the classifier; output in $TMP/TARGET.out / .err; returns its status.
run() {
    local t=$1 rc=0 t0=$SECONDS
    log "running on $t: $REPEAT inferences per image, ${#GUEST_FILES[@]} image(s)"
    timeout "$TIMEOUT_S" "$WASMZIP" run "$PKG" "${TRUST_ARGS[@]}" --grant-requested --mount "/data=$TMP/data" \
        --cache-dir "$TMP/cache" --nn-target "$t" -- --repeat "$REPEAT" "${GUEST_FILES[@]}" >"$TMP/$t.out" 2>"$TMP/$t.err" || rc=$?
    log "$t: exit status $rc after $((SECONDS - t0)) s"
    ((rc == 0)) || { sed 's/^/[gpu]   /' "$TMP/$t.err" >&2; sed 's/^/[gpu]   /' "$TMP/$t.out" >&2; }
    return $rc
}
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
# load_time TARGET: how long that run took to load the model, from wasmzip's `wasmzip::nn` log line.
load_time() { sed -e 's/\x1b\[[0-9;]*m//g' "$TMP/$1.err" | sed -n 's/.*loaded model `[^`]*` in \([^ ]*\).*/\1/p' | head -1; }

run cpu; CPU_RC=$?
run "$GPU_TARGET"; GPU_RC=$?
CPU_LOAD=$(load_time cpu); GPU_LOAD=$(load_time "$GPU_TARGET")
((CPU_RC == 0)) || die "the CPU run failed (status $CPU_RC): see above"
((GPU_RC == 0)) || die "the GPU run failed (status $GPU_RC): see above"

echo
echo "== orientation classifier: --nn-target $GPU_TARGET vs cpu, p50 of $REPEAT inferences (guest-measured µs) =="
FMT="%-22s %-9s %-9s %-8s %-10s %-10s %-10s %-10s %-12s %-12s %s\n"
# shellcheck disable=SC2059
printf "$FMT" image expected cpu gpu cpu_p50 gpu_p50 cpu_min gpu_min cpu_first gpu_first max_score_diff
OK=1
for f in "${GUEST_FILES[@]}"; do
    name=$(basename "$f")
    c=$(grep -F "$f " "$TMP/cpu.out" | head -1)
    g=$(grep -F "$f " "$TMP/$GPU_TARGET.out" | head -1)
    [[ -n $c && -n $g ]] || { log "no result for $f"; OK=0; continue; }
    exp="-"
    [[ -n $LABELS_JSON ]] && exp=$(sed -n "s/.*\"$name\": *\"\\([0-9]*\\)\".*/\\1/p" "$LABELS_JSON")
    cl=$(field label "$c"); gl=$(field label "$g")
    [[ $cl == "$gl" ]] || { log "$name: labels differ: cpu $cl, gpu $gl"; OK=0; }
    [[ $exp == "-" || -z $exp || $exp == "$cl" ]] || { log "$name: cpu label $cl is not the expected $exp"; OK=0; }
    diff=$(awk -v a="$(field scores "$c")" -v b="$(field scores "$g")" 'BEGIN {
        n = split(a, x, ","); split(b, y, ","); m = 0
        for (i = 1; i <= n; i++) { split(x[i], p, ":"); split(y[i], q, ":"); d = p[2] - q[2]; if (d < 0) d = -d; if (d > m) m = d }
        printf "%.4f", m }')
    # shellcheck disable=SC2059
    printf "$FMT" "$name" "${exp:--}" "$cl" "$gl" "$(field p50_us "$c")" "$(field p50_us "$g")" \
        "$(field min_us "$c")" "$(field min_us "$g")" "$(field inference_us "$c")" "$(field inference_us "$g")" "$diff"
done
echo
echo "model load (parse, optimise, plan; on the GPU also compile or read the kernels): cpu ${CPU_LOAD:-?}, gpu ${GPU_LOAD:-?}"

# ----------------------------------------------------------------------------------------------------
# HTTP: the same images through `wasmzip serve` and the package's http component.

# p50: the lower median of the numbers on stdin, one per line (as the guests compute theirs).
p50() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# serve_run TARGET: serves PKG with --nn-target TARGET on a free port of 127.0.0.1, POSTs each image
# once untimed and then HTTP_REPEAT times, one after another; each image's responses go to
# $TMP/http-TARGET-IMAGE.txt (body, tab, status, tab, seconds). Returns non-zero if serving failed.
serve_run() {
    local t=$1 pid addr="" t0=$SECONDS f name urls i rc=0
    local logf="$TMP/serve-$t.log"
    log "serving on $t: $HTTP_REPEAT requests per image, ${#GUEST_FILES[@]} image(s)"
    "$WASMZIP" serve "$PKG" "${TRUST_ARGS[@]}" --grant-requested --listen 127.0.0.1:0 --data-dir "$TMP/serve-$t" \
        --cache-dir "$TMP/cache" --nn-target "$t" >"$logf" 2>&1 &
    pid=$!
    while [[ -z $addr ]]; do
        addr=$(sed -e 's/\x1b\[[0-9;]*m//g' "$logf" | sed -n 's/^serving on \(http:[^ ]*\)$/\1/p' | head -1)
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || { log "wasmzip serve ($t) exited:"; sed 's/^/[gpu]   /' "$logf" >&2; return 1; }
        ((SECONDS - t0 < TIMEOUT_S)) || { log "wasmzip serve ($t) did not start in ${TIMEOUT_S} s:"; sed 's/^/[gpu]   /' "$logf" >&2; kill -9 "$pid"; return 1; }
        sleep 0.1
    done
    log "$t: serving at $addr after $((SECONDS - t0)) s"
    for f in "${GUEST_FILES[@]}"; do
        name=$(basename "$f")
        urls=()
        for ((i = 0; i < HTTP_REPEAT; i++)); do urls+=("$addr/classify"); done
        curl -s --max-time "$TIMEOUT_S" --data-binary @"$TMP/data/$name" "$addr/classify" >/dev/null || rc=1
        curl -s --max-time "$TIMEOUT_S" --data-binary @"$TMP/data/$name" -w '\t%{http_code}\t%{time_total}\n' "${urls[@]}" \
            >"$TMP/http-$t-$name.txt" || rc=1
    done
    if ((PARALLEL_N > 0)); then
        local first t0_ns
        first=$(basename "${GUEST_FILES[0]}")
        mkdir -p "$TMP/par-$t"
        awk -v n="$PARALLEL_N" -v u="$addr/classify" -v d="$TMP/par-$t" \
            'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"%s/%d.json\"\n", u, d, i }' >"$TMP/par-$t.cfg"
        t0_ns=$(date +%s%N)
        curl -s --parallel --parallel-max 16 --max-time "$TIMEOUT_S" --data-binary @"$TMP/data/$first" -w '%{http_code}\n' \
            -K "$TMP/par-$t.cfg" >"$TMP/par-$t.codes" || rc=1
        echo $((($(date +%s%N) - t0_ns) / 1000)) >"$TMP/par-$t.us"
    fi
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" || { log "wasmzip serve ($t) did not exit cleanly:"; sed 's/^/[gpu]   /' "$logf" >&2; rc=1; }
    log "$t: served for $((SECONDS - t0)) s"
    return $rc
}
serve_load_time() { sed -e 's/\x1b\[[0-9;]*m//g' "$TMP/serve-$1.log" | sed -n 's/.*loaded model `[^`]*` in \([^ ]*\).*/\1/p' | head -1; }

HTTP_DONE=0
if ((HTTP_REPEAT == 0)); then
    log "HTTP_REPEAT=0: HTTP part skipped"
elif ! "$WASMZIP" inspect "$PKG" 2>/dev/null | grep -q '(world http'; then
    log "$PKG has no http component: HTTP part skipped (bench/gpu-bundle.sh packs one)"
elif ! command -v curl >/dev/null 2>&1; then
    log "curl not found: HTTP part skipped"
else
    serve_run cpu || OK=0
    serve_run "$GPU_TARGET" || OK=0
    echo
    echo "== the same through wasmzip serve: p50 of $HTTP_REPEAT sequential requests per image (guest inference and whole request, µs) =="
    FMT="%-22s %-9s %-9s %-8s %-10s %-10s %-11s %s\n"
    # shellcheck disable=SC2059
    printf "$FMT" image expected cpu gpu cpu_p50 gpu_p50 cpu_request gpu_request
    for f in "${GUEST_FILES[@]}"; do
        name=$(basename "$f")
        declare -A label=() inf=() req=()
        for t in cpu "$GPU_TARGET"; do
            out="$TMP/http-$t-$name.txt"
            [[ -s $out ]] || { log "$name: no HTTP results on $t"; OK=0; continue; }
            n200=$(awk -F'\t' '$2 == 200' "$out" | wc -l)
            ((n200 == HTTP_REPEAT)) || { log "$name on $t: $n200 of $HTTP_REPEAT requests answered 200: $(grep -v $'\t200\t' "$out" | head -1)"; OK=0; }
            labels=$(sed -n 's/.*"label":"\([0-9]*\)".*/\1/p' "$out" | sort -u)
            [[ $(wc -l <<<"$labels") == 1 ]] || { log "$name on $t: the requests gave different labels: $(echo $labels)"; OK=0; }
            k=${t/#$GPU_TARGET/gpu}
            label[$k]=$(head -1 <<<"$labels")
            inf[$k]=$(sed -n 's/.*"inference_us":\([0-9]*\).*/\1/p' "$out" | p50)
            req[$k]=$(awk -F'\t' '$2 == 200 { printf "%.0f\n", $3 * 1e6 }' "$out" | p50)
        done
        exp="-"
        [[ -n $LABELS_JSON ]] && exp=$(sed -n "s/.*\"$name\": *\"\\([0-9]*\\)\".*/\\1/p" "$LABELS_JSON")
        [[ ${label[cpu]:-} == "${label[gpu]:-}" ]] || { log "$name: HTTP labels differ: cpu ${label[cpu]:-?}, gpu ${label[gpu]:-?}"; OK=0; }
        [[ $exp == "-" || -z $exp || $exp == "${label[cpu]:-}" ]] || { log "$name: HTTP cpu label ${label[cpu]:-?} is not the expected $exp"; OK=0; }
        # shellcheck disable=SC2059
        printf "$FMT" "$name" "${exp:--}" "${label[cpu]:-?}" "${label[gpu]:-?}" "${inf[cpu]:-?}" "${inf[gpu]:-?}" "${req[cpu]:-?}" "${req[gpu]:-?}"
        unset label inf req
    done
    echo
    echo "model load in wasmzip serve: cpu $(serve_load_time cpu), gpu $(serve_load_time "$GPU_TARGET")"
    if ((PARALLEL_N > 0)); then
        first=$(basename "${GUEST_FILES[0]}")
        exp="-"
        [[ -n $LABELS_JSON ]] && exp=$(sed -n "s/.*\"$first\": *\"\\([0-9]*\\)\".*/\\1/p" "$LABELS_JSON")
        echo
        echo "== $PARALLEL_N POSTs of $first, 16 at a time (curl --parallel) =="
        FMT="%-8s %-10s %-12s %-10s %s\n"
        # shellcheck disable=SC2059
        printf "$FMT" target answered_200 labels seconds requests_per_s
        for t in cpu "$GPU_TARGET"; do
            n200=$(grep -c '^200$' "$TMP/par-$t.codes" 2>/dev/null || true)
            labels=$(grep -ho '"label":"[0-9]*"' "$TMP/par-$t"/*.json 2>/dev/null | tr -dc '0-9\n' | sort | uniq -c | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }')
            us=$(cat "$TMP/par-$t.us" 2>/dev/null || echo 0)
            # shellcheck disable=SC2059
            printf "$FMT" "$t" "${n200:-0}/$PARALLEL_N" "${labels:--}" "$(awk -v u="$us" 'BEGIN { printf "%.2f", u / 1e6 }')" \
                "$(awk -v u="$us" -v n="${n200:-0}" 'BEGIN { printf "%.1f", (u > 0 ? n / (u / 1e6) : 0) }')"
            [[ ${n200:-0} == "$PARALLEL_N" ]] || { log "$t: only ${n200:-0} of $PARALLEL_N parallel requests answered 200"; OK=0; }
            want=${exp:--}
            [[ $want == "-" || -z $want ]] && want=$(sed -n 's/^\([0-9]*\):.*/\1/p' <<<"$labels")
            [[ $labels == "$want:${n200:-0}" ]] || { log "$t: parallel requests gave labels $labels, not $want on every one"; OK=0; }
        done
    fi
    HTTP_DONE=1
fi

echo
if ((OK)); then
    echo "labels agree on every image: yes$( ((HTTP_DONE)) && echo ' (CLI and HTTP)')"
else
    echo "labels agree on every image: NO"
    exit 1
fi

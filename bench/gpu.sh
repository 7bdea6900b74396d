#!/usr/bin/env bash
# The orientation classifier on a GPU against the CPU, with a wasmzip built elsewhere with
# `--features cuda` (bench/gpu-bundle.sh makes the bundle this runs from). Downloads nothing, builds
# nothing, writes only a temporary directory; takes a few minutes at most.
#
# Usage: bash gpu.sh                      (inside a bundle made by bench/gpu-bundle.sh), or
#        WASMZIP=path/to/wasmzip PKG=orientation-cli.wasmzip [TRUST=dev.pub] [IMAGES="a.png b.jpg"] bash bench/gpu.sh
#
# Runs `wasmzip run PKG --nn-target cpu -- --repeat REPEAT IMAGES...`, then the same with
# `--nn-target gpu` (which fails, never falls back, when no GPU is usable); checks that both give the
# same label for every image (and the expected one, when a labels.json sits next to the images);
# prints each image's p50 / min / first inference time on both targets, the largest score
# difference, and how long each target took to load the model. Exit status: 0 when the GPU run worked
# and the labels agree, 1 otherwise.
#
# The first GPU load on a host compiles tract-cuda's kernels with NVRTC, which needs the CUDA 13
# toolkit's headers (`cuda_fp16.h` and CCCL; found under $CUDA_HOME or /usr/local/cuda), and caches
# them under $XDG_CACHE_HOME/tract (else ~/.cache/tract): about 90 s on an H100 host, then under a
# second for every later load. gpu.sh says whether that cache was there.
#
# Environment:
#   WASMZIP   the wasmzip binary (--features cuda)     (default: ./wasmzip next to this script)
#   PKG       the orientation-cli package              (default: ./orientation-cli.wasmzip next to it)
#   TRUST     public key that signed PKG               (default: ./dev.pub next to it; none: --allow-unsigned)
#   IMAGES    PNG / JPEG files                         (default: ./images/*.png ./images/*.jpg next to it)
#   REPEAT    inferences per image and target          (default 100)
#   TIMEOUT_S limit per wasmzip run, seconds           (default 300)
#   WASMZIP_LOG  wasmzip's log filter                   (default warn,wasmzip::nn=info: model loading)
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WASMZIP=${WASMZIP:-$HERE/wasmzip}
PKG=${PKG:-$HERE/orientation-cli.wasmzip}
REPEAT=${REPEAT:-100}
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
[[ -f $PKG ]] || die "PKG=$PKG is not a file (an orientation-cli package with the model)"
[[ -n $IMAGES ]] || die "no images: set IMAGES=\"a.png b.jpg\""
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a whole number >= 1"

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
run gpu; GPU_RC=$?
CPU_LOAD=$(load_time cpu); GPU_LOAD=$(load_time gpu)
((CPU_RC == 0)) || die "the CPU run failed (status $CPU_RC): see above"
((GPU_RC == 0)) || die "the GPU run failed (status $GPU_RC): see above"

echo
echo "== orientation classifier: --nn-target gpu vs cpu, p50 of $REPEAT inferences (guest-measured µs) =="
FMT="%-22s %-9s %-9s %-8s %-10s %-10s %-10s %-10s %-12s %-12s %s\n"
# shellcheck disable=SC2059
printf "$FMT" image expected cpu gpu cpu_p50 gpu_p50 cpu_min gpu_min cpu_first gpu_first max_score_diff
OK=1
for f in "${GUEST_FILES[@]}"; do
    name=$(basename "$f")
    c=$(grep -F "$f " "$TMP/cpu.out" | head -1)
    g=$(grep -F "$f " "$TMP/gpu.out" | head -1)
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
if ((OK)); then
    echo "labels agree on every image: yes"
else
    echo "labels agree on every image: NO"
    exit 1
fi

# Helpers the benchmarks share (bench/serve.sh, bench/serve-p3.sh, bench/nn.sh); sourced, not run.
# The sourcing script defines log and die, TMP (its temporary directory), PIDS (servers to stop on
# exit), PROBLEMS (notes for its summary), WASMZIP (the binary, for pack_http), and for `measure`
# WARMUP_S, DURATION_S, THREADS, CONNS and PID (the server being measured).

calc() { awk "BEGIN { printf \"${2:-%.2f}\", ($1) }"; }
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
yesno() { [[ $(calc "$1" %d) == 1 ]] && echo yes || echo "**no**"; }

# free_port: an unused loopback TCP port (bind to port 0, read it back).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        local p
        while :; do
            p=$((20000 + RANDOM % 20000))
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
        done
    fi
}

# start NAME LOG CMD...: starts a server in the background; sets SERVER_PID.
SERVER_PID=""
start() {
    local name=$1 logf=$2
    shift 2
    "$@" >"$logf" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    log "started $name (pid $SERVER_PID)"
}

# wait_http URL PID LOG [SECONDS]: waits until URL answers HTTP at all (any status).
wait_http() {
    local url=$1 pid=$2 logf=$3 limit=${4:-120} t0 rc
    t0=$SECONDS
    while :; do
        rc=0
        curl -s -o /dev/null --max-time 2 "$url" || rc=$?
        [[ $rc == 0 ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) exited before it was ready; its log:"
            cat "$logf" >&2
            return 1
        fi
        ((SECONDS - t0 < limit)) || { log "server (pid $pid) not ready after ${limit}s; its log:"; cat "$logf" >&2; return 1; }
        sleep 0.1
    done
}

# wait_line PATTERN LOG PID [SECONDS]: waits for a line in a server's log (e.g. `serving on`).
wait_line() {
    local pattern=$1 logf=$2 pid=$3 limit=${4:-120} t0=$SECONDS
    until grep -q "$pattern" "$logf" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) exited before printing \`$pattern\`; its log:"
            cat "$logf" >&2
            return 1
        fi
        ((SECONDS - t0 < limit)) || { log "no \`$pattern\` after ${limit}s; log:"; cat "$logf" >&2; return 1; }
        sleep 0.05
    done
}

# stop PID: SIGTERM, wait up to 15 s, then SIGKILL.
stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored SIGTERM for 15 s; killing it"; kill -9 "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
}

# to_us VALUE: a wrk duration (e.g. 635.91us, 1.04ms, 2.00s, 1.5m) in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : (u == "h") ? 3600000000 : -1
        if (f < 0) { print "nan"; exit }
        printf "%.1f", n * f
    }'
}

# wrk_run LABEL OUT WRK-ARGS...: runs wrk; sets W_RPS, W_P50_US, W_P99_US, W_REQS, W_ERRORS (non-2xx/3xx
# responses plus socket errors), and logs a warning with wrk's own lines when there are any.
W_RPS=0 W_P50_US=0 W_P99_US=0 W_REQS=0 W_ERRORS=0
wrk_run() {
    local label=$1 out=$2 non2xx sock
    shift 2
    wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed: $label"; }
    W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    W_P50_US=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    W_P99_US=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    W_REQS=$(awk '/requests in/ { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sock=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
    W_ERRORS=$((${non2xx:-0} + ${sock:-0}))
    if ((W_ERRORS)); then
        log "WARNING: $label: $W_ERRORS errors (non-2xx/3xx: ${non2xx:-0}, socket errors: ${sock:-0}):"
        grep -E 'Non-2xx|Socket errors' "$out" >&2 || true
    fi
    [[ -n $W_RPS ]] || { cat "$out" >&2; die "cannot parse wrk output: $label"; }
}

ms_of() { calc "$1 / 1000" "${2:-%.2f}"; }

# proc_usage PID: "CPU-TICKS MINOR-FAULTS" of a process (utime + stime, minflt; all its threads).
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_usage() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13, $8 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"
}

# measure LABEL URL [WRK-SCRIPT-ARGS...]: warm-up, 1-connection latency run, CONNS-connection throughput
# run, against the server whose pid is $PID. Sets M_P50, M_P99 (µs, 1 connection), M_RPS (CONNS
# connections), M_P50_LOADED, M_P99_LOADED, M_CPU_US and M_FLT (per request, CONNS run), M_ERRORS.
measure() {
    local label=$1 url=$2 slug
    shift 2
    slug=$(echo "$label" | tr -c 'a-z0-9\n' '-')
    log "$label: warm-up ${WARMUP_S}s"
    wrk_run "$label warm-up" "$TMP/wrk-$slug-warm.txt" -t"$THREADS" -c"$CONNS" -d"${WARMUP_S}s" "$@" "$url"
    log "$label: 1 connection, ${DURATION_S}s"
    wrk_run "$label c1" "$TMP/wrk-$slug-c1.txt" -t1 -c1 -d"${DURATION_S}s" --latency "$@" "$url"
    M_P50=$W_P50_US M_P99=$W_P99_US M_RPS1=$W_RPS M_ERRORS=$W_ERRORS
    log "$label: $CONNS connections, ${DURATION_S}s"
    local before after
    before=$(proc_usage "$PID")
    wrk_run "$label c$CONNS" "$TMP/wrk-$slug-c$CONNS.txt" -t"$THREADS" -c"$CONNS" -d"${DURATION_S}s" --latency "$@" "$url"
    after=$(proc_usage "$PID")
    M_RPS=$W_RPS M_P50_LOADED=$W_P50_US M_P99_LOADED=$W_P99_US M_ERRORS=$((M_ERRORS + W_ERRORS))
    # Server CPU time and minor page faults per request over the throughput run (all threads).
    read -r M_CPU_US M_FLT < <(awk -v b="$before" -v a="$after" -v n="$W_REQS" -v hz="$CLK_TCK" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        if (n > 0) printf "%.0f %.1f\n", (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / n; else print "0 0"
    }')
    log "$label: p50 $(ms_of "$M_P50") ms, p99 $(ms_of "$M_P99") ms (c1, $M_RPS1 req/s); $M_RPS req/s (c$CONNS, p50 $(ms_of "$M_P50_LOADED") ms, p99 $(ms_of "$M_P99_LOADED") ms); server CPU $M_CPU_US µs/request, $M_FLT minor faults/request; errors $M_ERRORS"
    ((M_ERRORS == 0)) || PROBLEMS+=("$label: $M_ERRORS errors under load (see the warnings above)")
}


# pack_http NAME WASM-FILE ROUTE OUT [TOML-LINE]: a signed http package with one component.
pack_http() {
    local name=$1 wasm=$2 route=$3 out=$4 dir="$TMP/src-$1"
    mkdir -p "$dir"
    cp "$wasm" "$dir/$(basename "$wasm")"
    cat >"$dir/wasmzip.toml" <<EOF
[package]
name = "$name"
version = "1.0.0"

[components.$name]
file = "$(basename "$wasm")"
world = "http"
routes = ["$route"]
${5:-}
EOF
    "$WASMZIP" pack "$dir" --key "$TMP/dev.key" -o "$out" >/dev/null
    rm -rf "$dir"
}

# json_body KB OUT: a deterministic JSON array of records {name, price, quantity, active}, about KB
# KiB. Prices are written the way both JSON.stringify and serde_json write them back (no trailing
# zeros), so outputs can be compared byte for byte.
json_body() {
    awk -v target=$(($1 * 1024)) 'BEGIN {
    split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima", w, " ")
    out = "["; x = 12345
    for (i = 0; length(out) < target - 90; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        cents = x % 100000
        price = sprintf("%.2f", cents / 100); sub(/0+$/, "", price); sub(/\.$/, "", price)
        qty = int(x / 100000) % 50
        active = (i % 3 != 0) ? "true" : "false"
        name = sprintf("%s-%s widget %05d", w[i % 12 + 1], w[int(x / 7) % 12 + 1], i)
        out = out (i ? "," : "") sprintf("{\"name\":\"%s\",\"price\":%s,\"quantity\":%d,\"active\":%s}", name, price, qty, active)
    }
    printf "%s]", out
}' >"$2"
}

# post_script BODY OUT: a wrk script that POSTs the file BODY as JSON.
post_script() {
    cat >"$2" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$1", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
}

#!/usr/bin/env bash
# rollcall benchmark: throughput against an nginx ceiling, and memory.
#
# Usage: tests/bench/run.sh path/to/rollcall      (what `make bench` runs)
#
# Environment:
#   BENCH_SECONDS   wrk duration per figure, seconds (default 10)
#   BENCH_PIN       1 (default) pins the server under test (nginx, rollcall)
#                   to CPU 0 and wrk to CPU 1 when there are >= 2 CPUs; 0 = no
#   BENCH_SESSIONS  sessions (each with one name) for the memory figure
#                   (default 100000)
#
# Every throughput figure uses the same wrk settings: wrk -t1 -c50 -d<s>s
# --latency (one wrk thread: rollcall is single-threaded, nginx runs one
# worker, and the machine has two cores). Everything listens on 127.0.0.1,
# on ports the kernel picks, and everything started here is stopped on exit.
#
# Exit status: 0 when every figure was measured, whether or not it meets its
# target (this is a benchmark, not a test); 1 when something kept a figure
# from being measured or made it meaningless (the server would not start or
# died, a setup request got the wrong answer, wrk saw non-2xx answers, the
# memory loader failed its checks).

# `make bench` may run this file with sh (dash): re-run it under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u -o pipefail

BIN=${1:-}
if [ -z "$BIN" ]; then
    echo "usage: $0 path/to/rollcall" >&2
    exit 2
fi
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
if [ ! -x "$BIN" ]; then
    echo "bench: $BIN is not an executable file (build it first)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${BENCH_SECONDS:-10}
case "$SECS" in ''|*[!0-9]*|0) echo "bench: BENCH_SECONDS must be a positive integer" >&2; exit 2 ;; esac
NSESS=${BENCH_SESSIONS:-100000}
MAX_SESSIONS=200000
WRK_ARGS=(-t1 -c50 "-d${SECS}s" --latency)
WRK_DESC="wrk -t1 -c50 -d${SECS}s --latency"

# ---------------------------------------------------------------- tools ---
PATH="$PATH:/usr/sbin:/sbin"
if ! command -v wrk >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
    echo "bench: installing wrk and nginx-light with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    # Keep the package scripts from starting a system nginx on port 80.
    POLICY_CREATED=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null &&
            $SUDO chmod 755 /usr/sbin/policy-rc.d && POLICY_CREATED=1
    fi
    $SUDO apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk nginx-light >&2
    status=$?
    [ "$POLICY_CREATED" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
    if [ $status -ne 0 ] || ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
        echo "bench: could not install wrk and nginx-light" >&2
        exit 1
    fi
fi
for tool in python3 awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is required" >&2; exit 1; }
done

SERVER_CPU=()
WRK_CPU=()
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1 &&
        [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    WRK_CPU=(taskset -c 1)
fi

# ------------------------------------------------------ process control ---
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rollcall-bench.XXXXXX")
PIDS=()

stop_pid() {  # stop_pid PID: TERM, up to 5 s, then KILL; reap it.
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {  # wait_port PORT PID: until 127.0.0.1:PORT accepts (10 s max)
    local i
    for i in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

FAILED=0
ROWS=()
PROBLEMS=()

problem() {
    PROBLEMS+=("$1")
    FAILED=1
    echo "bench: PROBLEM: $1" >&2
}

# ------------------------------------------------------------------ wrk ---
# run_wrk LABEL URL [SCRIPT]: runs wrk, prints its output, and sets
# W_RPS (requests/s), W_P99_MS, W_NON2XX, W_SOCKERR, W_REQS.
run_wrk() {
    local label=$1 url=$2 script=${3:-} out="$TMP/wrk.out"
    local args=("${WRK_ARGS[@]}")
    [ -n "$script" ] && args+=(-s "$script")
    echo
    echo "=== $label: ${WRK_CPU[*]:+${WRK_CPU[*]} }$WRK_DESC${script:+ -s $(basename "$script")} $url"
    "${WRK_CPU[@]}" wrk "${args[@]}" "$url" >"$out" 2>&1
    local rc=$?
    sed 's/^/  /' "$out"
    W_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    W_P99_MS=$(awk '$1 == "99%" {
            v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
            m = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : -1;
            printf "%.2f", m }' "$out")
    W_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$out")
    W_NON2XX=${W_NON2XX:-0}
    W_SOCKERR=$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' "$out")
    W_REQS=$(awk '/requests in/ {print $1}' "$out")
    if [ $rc -ne 0 ] || [ -z "$W_RPS" ] || [ -z "$W_P99_MS" ]; then
        problem "$label: wrk failed (exit $rc); no Requests/sec or 99% line"
        W_RPS=""
        return 1
    fi
    if [ "$W_NON2XX" != 0 ]; then
        problem "$label: $W_NON2XX of $W_REQS answers were not 2xx/3xx"
    fi
    return 0
}

NGINX_RPS=""

# add_row LABEL [TARGET_RATIO] [NOTE]: one table row from the last run_wrk.
add_row() {
    local label=$1 target=${2:-} note=${3:-} ratio="" verdict=""
    if [ -z "$W_RPS" ]; then
        ROWS+=("$(printf '%-30s %9s %9s %7s  %s' "$label" "-" "-" "-" "NOT MEASURED")")
        return
    fi
    if [ -n "$NGINX_RPS" ]; then
        ratio=$(awk -v a="$W_RPS" -v b="$NGINX_RPS" 'BEGIN { printf "%.2f", a / b }')
    fi
    if [ -n "$target" ]; then
        if [ -z "$ratio" ]; then
            verdict="$(printf '>=%.2f' "$target") n/a (no nginx figure)"
        elif [ "$W_NON2XX" != 0 ]; then
            verdict="$(printf '>=%.2f' "$target") INVALID"
        elif awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r + 0 >= t + 0) }'; then
            verdict="$(printf '>=%.2f' "$target") PASS"
        else
            verdict="$(printf '>=%.2f' "$target") BELOW"
        fi
    fi
    [ "$W_NON2XX" != 0 ] && note="${note:+$note; }$W_NON2XX non-2xx!"
    case "$W_SOCKERR" in
        ''|"connect 0, read 0, write 0, timeout 0") ;;
        *) note="${note:+$note; }socket errors: $W_SOCKERR" ;;
    esac
    ROWS+=("$(printf '%-30s %9.0f %7.2fms %7s  %-14s %s' "$label" "$W_RPS" "$W_P99_MS" "${ratio:--}" "$verdict" "$note")")
}

# --------------------------------------------------------------- nginx ---
bench_nginx() {
    local dir="$TMP/nginx" port pid
    mkdir -p "$dir/logs" "$dir/tmp"
    chmod 755 "$TMP" "$dir"
    port=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    # rollcall never closes a keep-alive connection; neither should the ceiling.
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '{"key":"bench","session":"0123456789abcdef","value":1}';
        }
    }
}
EOF
    "${SERVER_CPU[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        >"$dir/logs/stdout" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if ! wait_port "$port" "$pid"; then
        problem "nginx did not start on 127.0.0.1:$port: $(tail -5 "$dir/logs/error.log" "$dir/logs/stdout" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$pid"; forget_pid "$pid"
        W_RPS=""; add_row "nginx ceiling"
        return
    fi
    if run_wrk "nginx ceiling" "http://127.0.0.1:$port/"; then
        NGINX_RPS=$W_RPS
        W_NON2XX=0
    fi
    add_row "nginx ceiling"
    stop_pid "$pid"; forget_pid "$pid"
}

# ------------------------------------------------------------ rollcall ---
RC_PID=""
RC_PORT=""
RC_LOG=""

start_rollcall() {  # start_rollcall NAME
    RC_LOG="$TMP/rollcall-$1.log"
    "${SERVER_CPU[@]}" "$BIN" --listen 127.0.0.1:0 --max-sessions "$MAX_SESSIONS" \
        >"$RC_LOG" 2>&1 </dev/null &
    RC_PID=$!
    PIDS+=("$RC_PID")
    RC_PORT=""
    local i
    for i in $(seq 100); do
        RC_PORT=$(sed -n 's/.*rollcall: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$RC_LOG" | head -1)
        [ -n "$RC_PORT" ] && break
        kill -0 "$RC_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$RC_PORT" ] || ! wait_port "$RC_PORT" "$RC_PID"; then
        problem "rollcall did not start ($BIN --listen 127.0.0.1:0 --max-sessions $MAX_SESSIONS; no 'rollcall: listening on 127.0.0.1:PORT' on stderr within 10 s, or the port did not accept). Log: $(tail -5 "$RC_LOG" | tr '\n' ' ')"
        stop_rollcall
        return 1
    fi
    echo "bench: rollcall ($1) pid $RC_PID listening on 127.0.0.1:$RC_PORT"
    return 0
}

stop_rollcall() {
    [ -n "$RC_PID" ] || return 0
    stop_pid "$RC_PID"; forget_pid "$RC_PID"
    RC_PID=""
}

rollcall_alive() {  # rollcall_alive WHAT
    if ! kill -0 "$RC_PID" 2>/dev/null; then
        problem "rollcall died during $1. Log: $(tail -5 "$RC_LOG" | tr '\n' ' ')"
        return 1
    fi
}

rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

bench_rollcall() {
    local labels=("GET /v1/names/bench" "PUT+DELETE /v1/names/cycle-*" "heartbeat")
    if ! start_rollcall throughput; then
        for l in "${labels[@]}"; do W_RPS=""; add_row "$l"; done
        return
    fi
    local env
    if ! env=$(python3 "$HERE/prepare.py" --port "$RC_PORT"); then
        problem "setup requests against rollcall got wrong answers (see PROBLEM lines above)"
        stop_rollcall
        for l in "${labels[@]}"; do W_RPS=""; add_row "$l"; done
        return
    fi
    local ROLLCALL_SESSION="" ROLLCALL_TOKEN=""
    eval "$env"
    export ROLLCALL_TOKEN
    local base="http://127.0.0.1:$RC_PORT"

    run_wrk "${labels[0]}" "$base/v1/names/bench" && rollcall_alive "${labels[0]}" || W_RPS=""
    add_row "${labels[0]}" 0.6

    if kill -0 "$RC_PID" 2>/dev/null; then
        run_wrk "${labels[1]}" "$base/v1/names/cycle" "$HERE/cycle.lua" &&
            rollcall_alive "${labels[1]}" || W_RPS=""
        add_row "${labels[1]}" "" "2 requests/cycle; p99 per cycle"
    else
        W_RPS=""; add_row "${labels[1]}"
    fi

    if kill -0 "$RC_PID" 2>/dev/null; then
        run_wrk "${labels[2]}" "$base/v1/sessions/$ROLLCALL_SESSION/heartbeat" "$HERE/heartbeat.lua" &&
            rollcall_alive "${labels[2]}" || W_RPS=""
        add_row "${labels[2]}" 0.5
    else
        W_RPS=""; add_row "${labels[2]}"
    fi
    stop_rollcall
}

MEM_ROW=""
bench_memory() {
    local label="RSS ${NSESS} sessions+names"
    if ! start_rollcall memory; then
        MEM_ROW="$label: NOT MEASURED (rollcall did not start)"
        return
    fi
    sleep 0.5
    local before after t0 t1
    before=$(rss_kb "$RC_PID")
    echo
    echo "=== memory: VmRSS before $before kB; loading $NSESS sessions (ttl 3600), one name each"
    t0=$(date +%s.%N)
    if ! timeout 300 python3 "$HERE/load_sessions.py" --port "$RC_PORT" -n "$NSESS" \
            --ttl 3600 --prefix mem- 2>&1 >"$TMP/load.out" | sed 's/^/  /'; then
        rollcall_alive "the memory load"
        problem "memory loader failed (see load_sessions lines above)"
        MEM_ROW="$label: NOT MEASURED (loader failed)"
        stop_rollcall
        return
    fi
    t1=$(date +%s.%N)
    if ! rollcall_alive "the memory load"; then
        MEM_ROW="$label: NOT MEASURED (rollcall died)"
        return
    fi
    after=$(rss_kb "$RC_PID")
    echo "  VmRSS after $after kB; load took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    MEM_ROW=$(awk -v b="$before" -v a="$after" -v label="$label" 'BEGIN {
        mb = a / 1024; mb0 = b / 1024;
        printf "%s: %.1f MB (before %.1f MB, delta %.1f MB)  target <100 MB %s",
            label, mb, mb0, mb - mb0, (mb < 100 ? "PASS" : "BELOW") }')
    stop_rollcall
}

# ----------------------------------------------------------------- main ---
echo "rollcall benchmark: $BIN"
echo "wrk settings for every figure: $WRK_DESC${WRK_CPU[*]:+ (wrk on CPU 1, server on CPU 0)}"
bench_nginx
bench_rollcall
bench_memory

echo
echo "=== results ($WRK_DESC; ratio = req/s / nginx req/s)"
printf '%-30s %9s %9s %7s  %s\n' "figure" "req/s" "p99" "ratio" "target"
for row in "${ROWS[@]}"; do echo "$row" | sed 's/ *$//'; done
echo "$MEM_ROW  (target applies to VmRSS after loading)"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo
    echo "problems:"
    for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
fi
exit $FAILED

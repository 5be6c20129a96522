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
# Figures: the nginx ceiling (a fixed 55-byte JSON answer); on one rollcall,
# GET of a name, PUT+DELETE cycles of names (cycle.lua), heartbeats; on a
# fresh rollcall, GET of a group of 100 members (bench-g100, set up and
# checked by prepare_groups.py), a round_robin pick from it, and join+leave
# cycles of groups (cycle.lua too); then VmRSS of a fresh rollcall loaded
# with BENCH_SESSIONS sessions of one name each (load_sessions.py), and of
# another loaded with 1,000 groups of 100 members, from 1,000 sessions in
# 100 groups each (load_groups.py, which checks the groups by GET); then the
# messages figures, the event-stream figures (1,000 idle streams: their
# VmRSS, GET /v1/names/bench with and without them, one change reaching all)
# and the calls figures (1,000 callers, 16 responders: calls/s, round trip,
# nothing pending after), all with msgload.c; see their sections below.
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
        ROWS+=("$(printf '%-32s %9s %9s %7s  %s' "$label" "-" "-" "-" "NOT MEASURED")")
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
    ROWS+=("$(printf '%-32s %9.0f %7.2fms %7s  %-14s %s' "$label" "$W_RPS" "$W_P99_MS" "${ratio:--}" "$verdict" "$note")")
}

# wrk_figure LABEL URL SCRIPT TARGET NOTE: one figure against the running
# rollcall (RC_PID); NOT MEASURED when it is down or dies during the run.
wrk_figure() {
    if kill -0 "$RC_PID" 2>/dev/null; then
        run_wrk "$1" "$2" "$3" && rollcall_alive "$1" || W_RPS=""
    else
        W_RPS=""
    fi
    add_row "$1" "$4" "$5"
}

not_measured() {  # not_measured LABEL...: a NOT MEASURED row for each
    local l
    for l in "$@"; do W_RPS=""; add_row "$l"; done
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
        not_measured "nginx ceiling"
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

# start_rollcall NAME [ARG...]: a fresh rollcall (RC_PID, RC_PORT, RC_LOG)
# started with --listen 127.0.0.1:0 --max-sessions MAX_SESSIONS ARG...
start_rollcall() {
    local name=$1 i
    shift
    RC_LOG="$TMP/rollcall-$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    "${SERVER_CPU[@]}" "$BIN" --listen 127.0.0.1:0 --max-sessions "$MAX_SESSIONS" "$@" \
        >"$RC_LOG" 2>&1 </dev/null &
    RC_PID=$!
    PIDS+=("$RC_PID")
    RC_PORT=""
    for i in $(seq 100); do
        RC_PORT=$(sed -n 's/.*rollcall: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$RC_LOG" | head -1)
        [ -n "$RC_PORT" ] && break
        kill -0 "$RC_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$RC_PORT" ] || ! wait_port "$RC_PORT" "$RC_PID"; then
        problem "rollcall did not start ($BIN --listen 127.0.0.1:0 --max-sessions $MAX_SESSIONS${*:+ $*}; no 'rollcall: listening on 127.0.0.1:PORT' on stderr within 10 s, or the port did not accept). Log: $(tail -5 "$RC_LOG" | tr '\n' ' ')"
        stop_rollcall
        return 1
    fi
    echo "bench: rollcall ($name) pid $RC_PID listening on 127.0.0.1:$RC_PORT"
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

# prepare_rollcall WHAT SCRIPT [ARG...]: the python SCRIPT (prepare.py or
# prepare_groups.py) sets up the running rollcall and checks it; its shell
# assignments are evaluated (the caller declares ROLLCALL_SESSION and
# ROLLCALL_TOKEN local) and ROLLCALL_TOKEN exported for the wrk scripts.
# 1 when the setup got wrong answers ("WHAT got wrong answers": a problem;
# rollcall is stopped).
prepare_rollcall() {
    local what=$1 script=$2 env
    shift 2
    if ! env=$(python3 "$HERE/$script" --port "$RC_PORT" "$@"); then
        problem "$what got wrong answers (see PROBLEM lines above)"
        stop_rollcall
        return 1
    fi
    eval "$env"
    export ROLLCALL_TOKEN
}

bench_rollcall() {
    local labels=("GET /v1/names/bench" "PUT+DELETE /v1/names/cycle-*" "heartbeat")
    local ROLLCALL_SESSION="" ROLLCALL_TOKEN=""
    if ! start_rollcall throughput ||
            ! prepare_rollcall "setup requests against rollcall" prepare.py; then
        not_measured "${labels[@]}"
        return
    fi
    local base="http://127.0.0.1:$RC_PORT"

    wrk_figure "${labels[0]}" "$base/v1/names/bench" "" 0.6 ""
    wrk_figure "${labels[1]}" "$base/v1/names/cycle" "$HERE/cycle.lua" "" \
        "2 requests/cycle; p99 per cycle"
    wrk_figure "${labels[2]}" "$base/v1/sessions/$ROLLCALL_SESSION/heartbeat" \
        "$HERE/heartbeat.lua" 0.5 ""
    stop_rollcall
}

# Groups, on a fresh rollcall: the GET and pick figures first, so the group
# table is the same for both (the cycles come last).
bench_groups() {
    local labels=("GET /v1/groups/bench-g100" "GET bench-g100?pick=round_robin"
                  "PUT+DELETE /v1/groups/cycle-*")
    local ROLLCALL_SESSION="" ROLLCALL_TOKEN=""
    if ! start_rollcall groups ||
            ! prepare_rollcall "setup requests for the group figures" prepare_groups.py \
                --group bench-g100 --members 100; then
        not_measured "${labels[@]}"
        return
    fi
    local base="http://127.0.0.1:$RC_PORT"

    wrk_figure "${labels[0]}" "$base/v1/groups/bench-g100" "" 0.3 "100 members"
    wrk_figure "${labels[1]}" "$base/v1/groups/bench-g100?pick=round_robin" "" 0.5 "of 100 members"
    wrk_figure "${labels[2]}" "$base/v1/groups/cycle" "$HERE/cycle.lua" "" \
        "2 requests/cycle; p99 per cycle"
    stop_rollcall
}

# load_rss NAME WHAT DESC LOADER [ARG...]: VmRSS of a fresh rollcall NAME
# before and after the python LOADER (--port added) loads it with DESC, in
# RSS_BEFORE and RSS_AFTER (kB); rollcall is stopped after. 1 when it was not
# measured (RSS_WHY says why; a problem when the load failed: "WHAT loader
# failed").
load_rss() {
    local name=$1 what=$2 desc=$3 loader=$4 t0 t1
    shift 4
    RSS_WHY=""
    if ! start_rollcall "$name"; then
        RSS_WHY="rollcall did not start"
        return 1
    fi
    sleep 0.5
    RSS_BEFORE=$(rss_kb "$RC_PID")
    echo
    echo "=== $what: VmRSS before $RSS_BEFORE kB; loading $desc"
    t0=$(date +%s.%N)
    if ! timeout 300 python3 "$HERE/$loader" --port "$RC_PORT" "$@" \
            2>&1 >"$TMP/${loader%.py}.out" | sed 's/^/  /'; then
        rollcall_alive "the $what load"
        problem "$what loader failed (see ${loader%.py} lines above)"
        RSS_WHY="loader failed"
        stop_rollcall
        return 1
    fi
    t1=$(date +%s.%N)
    if ! rollcall_alive "the $what load"; then
        RSS_WHY="rollcall died"
        stop_rollcall
        return 1
    fi
    RSS_AFTER=$(rss_kb "$RC_PID")
    echo "  VmRSS after $RSS_AFTER kB; load took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    stop_rollcall
}

MEM_ROW=""
bench_memory() {
    local label="RSS ${NSESS} sessions+names"
    if ! load_rss memory memory "$NSESS sessions (ttl 3600), one name each" load_sessions.py \
            -n "$NSESS" --ttl 3600 --prefix mem-; then
        MEM_ROW="$label: NOT MEASURED ($RSS_WHY)"
        return
    fi
    MEM_ROW=$(awk -v b="$RSS_BEFORE" -v a="$RSS_AFTER" -v label="$label" 'BEGIN {
        mb = a / 1024; mb0 = b / 1024;
        printf "%s: %.1f MB (before %.1f MB, delta %.1f MB)  target <100 MB %s",
            label, mb, mb0, mb - mb0, (mb < 100 ? "PASS" : "BELOW") }')
}

GMEM_ROW=""
bench_memory_groups() {
    local ns=1000 ng=1000 nm=100
    local label="RSS ${ng} groups x ${nm} members"
    if ! load_rss memory-groups "group memory" \
            "$ng groups of $nm members ($ns sessions, ttl 3600, each in $((ng * nm / ns)) groups)" \
            load_groups.py --sessions "$ns" --groups "$ng" --members "$nm" --ttl 3600 --prefix memg-; then
        GMEM_ROW="$label: NOT MEASURED ($RSS_WHY)"
        return
    fi
    GMEM_ROW=$(awk -v b="$RSS_BEFORE" -v a="$RSS_AFTER" -v label="$label" -v ns="$ns" -v m="$((ng * nm))" 'BEGIN {
        mb = a / 1024; mb0 = b / 1024;
        printf "%s: %.1f MB (before %.1f MB, delta %.1f MB, %.0f bytes per membership with its %d sessions)  no target",
            label, mb, mb0, mb - mb0, (a - b) * 1024 / m, ns }')
}

# ------------------------------------------------------------ messages ---
# Messages: send-to-name and long-poll delivery, measured by msgload.c (our
# load tool: plain sockets and epoll, one thread; built here with cc). Each
# figure runs on a fresh rollcall started with --max-connections 20000, and
# msgload runs where wrk runs (CPU 1); it reads the server's CPU time, VmRSS
# and /proc/net/tcp through --pid. Every session long-polls its own mailbox
# on its own keep-alive connection; message n goes to name lp-<n mod waiters>;
# latency is the receiver's CLOCK_MONOTONIC minus the one in the body.
#   1. latency: 1,000 waiters, 2,000 messages/s, open loop, for BENCH_SECONDS
#      s over 4 sender connections; target p99 < 5 ms.
#   2. highest sustained send+receive rate: 1,000 waiters, 64 sender
#      connections pipelined 2 deep, closed loop (a sender slot sends again
#      once answered; at most 2,000 messages in flight), counted over 5 s
#      after 1 s of warm-up; then, on a fresh rollcall, an open-loop run at
#      90% of that rate for 5 s that must hold it (sent on schedule, drained
#      within 1 s, nothing lost); target >= 20,000 messages/s.
#   3. VmRSS per pending long-poll: 10,000 sessions with a name each; VmRSS
#      before their connections, with the connections idle, and with a
#      long-poll (wait=120) parked on each (the server's CPU idle and no
#      unread input on its sockets); then one message to every name, each
#      of which must arrive. Target < 10 KB per long-poll with its connection.
#   4. the parked-count sweep (waiting at scale): for 1,000, 3,000 and 9,000
#      parked receivers, an open loop at 5,000 messages/s for BENCH_SECONDS s
#      (every send answered on schedule? p99; the server's CPU per message),
#      then the highest closed-loop rate (as figure 2); at 9,000 also VmRSS
#      per parked receive (as figure 3) and per idle event stream (msgload
#      --mode streams). Targets at 9,000: the rate held, p99 < 2 ms, CPU
#      per message at most 1.3x the 1,000 figure, the highest rate at least
#      0.8x the 1,000 one.
# A run that loses, duplicates or fails a message is INVALID and a problem.
# msgload also reports how long rollcall was runnable but waiting for a CPU
# (/proc/PID/schedstat): on a busy machine that, not rollcall, sets the tail.

MSG_ROWS=()
MSGLOAD=""
MSG_MAX_CONNECTIONS=20000

msg_start_rollcall() {  # msg_start_rollcall NAME: room for 10,000 polls
    start_rollcall "$1" --max-connections "$MSG_MAX_CONNECTIONS"
}

msg_field() {  # msg_field FILE KEY: KEY's value on msgload's RESULT line
    awk -v k="$2" '/^RESULT / { for (i = 2; i <= NF; i++) { n = index($i, "=");
        if (substr($i, 1, n - 1) == k) v = substr($i, n + 1) } } END { print v }' "$1"
}

# msg_awk FILE AWK-ARG...: awk AWK-ARG... with each KEY=VALUE of msgload's
# RESULT line in FILE set as the awk variable KEY (p99_ms, lost, ...).
msg_awk() {
    local file=$1 kv kvs args=()
    shift
    while read -r -a kvs; do
        for kv in "${kvs[@]}"; do args+=(-v "$kv"); done
    done < <(sed -n 's/^RESULT //p' "$file")
    awk "${args[@]}" "$@"
}

# msg_run LABEL OUT MSGLOAD-ARGS...: msgload against a fresh rollcall, its
# output kept in OUT. 0: measured and clean; 2: measured, but something was
# lost, duplicated or failed (a problem); 1: not measured (a problem).
# MSG_WHY says what went wrong.
msg_run() {
    local label=$1 out=$2 rc
    shift 2
    MSG_WHY=""
    if ! msg_start_rollcall "$label"; then
        MSG_WHY="rollcall did not start"
        return 1
    fi
    echo
    echo "=== $label: ${WRK_CPU[*]:+${WRK_CPU[*]} }msgload $*"
    "${WRK_CPU[@]}" timeout 300 "$MSGLOAD" --port "$RC_PORT" --pid "$RC_PID" --timeout 240 "$@" >"$out" 2>&1
    rc=$?
    sed 's/^/  /' "$out"
    if ! rollcall_alive "$label"; then
        MSG_WHY="rollcall died"
        stop_rollcall
        return 1
    fi
    stop_rollcall
    if [ "$(msg_field "$out" measured)" != 1 ]; then
        MSG_WHY="msgload could not measure (exit $rc): $(sed -n 's/^msgload: FATAL: //p' "$out" | head -1)"
        problem "$label: $MSG_WHY"
        return 1
    fi
    if [ "$(msg_field "$out" clean)" != 1 ]; then
        if [ "$(msg_field "$out" mode)" = calls ]; then
            MSG_WHY=$(msg_awk "$out" 'BEGIN {
                printf "failed calls %s, wrong answers %s, failed replies %s, failed polls %s, failed connections %s, still in flight %s, /v1/stats read %s, pending %s, timed_out %s, receiver_gone %s, caller_gone %s",
                    errors, wrong, reply_errors, poll_errors, conn_failures, left_in_flight, stats_ok, pending, timed_out, receiver_gone, caller_gone }')
        else
            MSG_WHY=$(msg_awk "$out" 'BEGIN {
                printf "lost %s, duplicates %s, failed sends %s, failed polls %s, failed connections %s",
                    lost, duplicates, send_errors, poll_errors, conn_failures }')
        fi
        problem "$label: $MSG_WHY (see msgload's ERROR lines above)"
        return 2
    fi
    return 0
}

# msg_figure LABEL RUN-LABEL OUT PROGRAM MSGLOAD-ARG...: msg_run RUN-LABEL OUT
# MSGLOAD-ARG..., and its row in MSG_ROW: "LABEL: NOT MEASURED (why)", or
# what the awk PROGRAM prints (msg_awk OUT, with l=LABEL, st=msg_run's
# status and secs=BENCH_SECONDS).
msg_figure() {
    local label=$1 run_label=$2 out=$3 prog=$4 st
    shift 4
    msg_run "$run_label" "$out" "$@"
    st=$?
    if [ $st = 1 ]; then
        MSG_ROW="$label: NOT MEASURED ($MSG_WHY)"
    else
        MSG_ROW=$(msg_awk "$out" -v l="$label" -v st="$st" -v secs="$SECS" "$prog")
    fi
}

msg_latency() {
    local label="msg latency 1000 waiters @2000/s"
    msg_figure "$label" "$label" "$TMP/msg-latency.out" 'BEGIN {
        printf "%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%ss: %d sent, %d received, %d lost, %d duplicates; rollcall waited %d ms for a CPU)  target p99 <5 ms %s",
            l, p50_ms, p99_ms, max_ms, secs, sent, received, lost, duplicates, server_cpu_wait_ms,
            (st != 0 ? "INVALID" : (p99_ms + 0 < 5 ? "PASS" : "BELOW")) }' \
        --mode latency --waiters 1000 --rate 2000 --seconds "$SECS" --senders 4
    MSG_ROWS+=("$MSG_ROW")
}

msg_maxrate() {
    local label="msg max rate 1000 waiters" out="$TMP/msg-maxrate.out" out2="$TMP/msg-hold.out"
    local st st2 rate hold held note verdict
    msg_run "$label (closed loop)" "$out" --mode maxrate --waiters 1000 --senders 64 --pipeline 2 \
        --window 2000 --warmup 1 --seconds 5
    st=$?
    if [ $st = 1 ]; then
        MSG_ROWS+=("$label: NOT MEASURED ($MSG_WHY)")
        return
    fi
    rate=$(msg_field "$out" rate_received)
    # The open-loop check: 90% of the closed-loop rate, rounded down to 100/s.
    hold=$(awk -v r="$rate" 'BEGIN { h = int(r * 0.9 / 100) * 100; print (h < 100 ? 100 : h) }')
    msg_run "$label (open loop at ${hold}/s)" "$out2" --mode latency --waiters 1000 --rate "$hold" \
        --seconds 5 --senders 64 --pipeline 2
    st2=$?
    held=0
    if [ $st2 = 1 ]; then
        note="open loop at ${hold}/s: NOT MEASURED ($MSG_WHY)"
    else
        # held: clean, sent on schedule (5 s, 2% slack), drained within 1 s
        msg_awk "$out2" -v st="$st2" \
            'BEGIN { exit !(st == 0 && send_s + 0 <= 5 * 1.02 && drain_s + 0 < 1) }' && held=1
        note=$(msg_awk "$out2" -v h="$hold" -v held="$held" 'BEGIN {
            printf "open loop at %d/s %s: sent %.0f/s in %.2f s, drained in %.2f s, p99 %.2f ms",
                h, (held ? "held" : "NOT held"), rate_sent, send_s, drain_s, p99_ms }')
    fi
    if [ $st != 0 ]; then
        verdict=INVALID
    elif [ $held != 1 ]; then
        verdict="BELOW (not sustained in open loop)"
    elif awk -v r="$rate" 'BEGIN { exit !(r + 0 >= 20000) }'; then
        verdict=PASS
    else
        verdict=BELOW
    fi
    MSG_ROWS+=("$(msg_awk "$out" -v l="$label" -v n="$note" -v v="$verdict" 'BEGIN {
        printf "%s: %.0f msg/s sent and received (closed loop, 64 senders x2 pipelined; p99 %.2f ms, rollcall CPU %d%%, waited %d ms for a CPU, %d lost); %s  target >=20000/s %s",
            l, rate_received, p99_ms, cpu_server, server_cpu_wait_ms, lost, n, v }')")
}

msg_memory() {
    local n=10000 label="RSS per pending long-poll (10000)" hard
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt $((n + 100)) ]; then
        problem "$label: the open-file hard limit is $hard; $n long-polls need more than $((n + 100)) descriptors in rollcall and in msgload"
        MSG_ROWS+=("$label: NOT MEASURED (open-file hard limit $hard < $((n + 100)))")
        return
    fi
    msg_figure "$label" "$label" "$TMP/msg-memory.out" 'BEGIN {
        printf "%s: %.0f bytes each (%.0f the idle connection + %.0f the parked request; VmRSS %.1f -> %.1f MB; all %d answered by a message)  target <10 KB %s",
            l, per_poll_bytes, per_conn_bytes, per_request_bytes, rss_before_kb / 1024, rss_after_kb / 1024, received,
            (st != 0 ? "INVALID" : (per_poll_bytes + 0 < 10240 ? "PASS" : "BELOW")) }' \
        --mode memory --waiters "$n" --wait 120
    MSG_ROWS+=("$MSG_ROW")
}

MSGLOAD_STATE=""  # "": not built yet; ok; failed

build_msgload() {  # once; 0 when $MSGLOAD is ready
    if [ -z "$MSGLOAD_STATE" ]; then
        MSGLOAD="$TMP/msgload"
        echo
        echo "=== building msgload: ${CC:-cc} -O2 -Wall -Wextra -Werror $HERE/msgload.c" \
            "(load average now: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
        if "${CC:-cc}" -O2 -Wall -Wextra -Werror -o "$MSGLOAD" "$HERE/msgload.c" 2>&1 | sed 's/^/  /' &&
                [ -x "$MSGLOAD" ]; then
            MSGLOAD_STATE=ok
        else
            MSGLOAD_STATE=failed
            problem "msgload.c did not build"
        fi
    fi
    [ "$MSGLOAD_STATE" = ok ]
}

bench_messages() {
    local labels=("msg latency 1000 waiters @2000/s" "msg max rate 1000 waiters"
                  "RSS per pending long-poll (10000)") l
    if ! build_msgload; then
        for l in "${labels[@]}"; do MSG_ROWS+=("$l: NOT MEASURED (msgload.c did not build)"); done
        return
    fi
    msg_latency
    msg_maxrate
    msg_memory
    msg_sweep
}

SWEEP_ROWS=()
msg_sweep() {
    local n out out2 st st2 us1="" max1="" us max p99 held row verdict rss_poll="" rss_stream=""
    for n in 1000 3000 9000; do
        out="$TMP/sweep-$n.out" out2="$TMP/sweep-$n-max.out"
        msg_run "sweep: $n parked, open loop 5000/s" "$out" --mode latency --waiters "$n" --rate 5000 \
            --seconds "$SECS" --senders 4 --prefix "sw$n-"
        st=$?
        msg_run "sweep: $n parked, closed loop" "$out2" --mode maxrate --waiters "$n" --senders 64 --pipeline 2 \
            --window 2000 --warmup 1 --seconds 5 --prefix "sm$n-"
        st2=$?
        if [ $st = 1 ] || [ $st2 = 1 ]; then
            SWEEP_ROWS+=("sweep $n parked: NOT MEASURED ($MSG_WHY)")
            continue
        fi
        us=$(msg_field "$out" server_us_per_msg)
        max=$(msg_field "$out2" rate_received)
        p99=$(msg_field "$out" p99_ms)
        # held: clean, every send answered, on schedule (2% slack), drained within 1 s
        held=0
        msg_awk "$out" -v st="$st" -v secs="$SECS" \
            'BEGIN { exit !(st == 0 && sent + 0 >= 5000 * secs * 0.98 && send_s + 0 <= secs * 1.02 && drain_s + 0 < 1) }' &&
            held=1
        [ "$n" = 1000 ] && us1=$us max1=$max
        row=$(msg_awk "$out" -v n="$n" -v us1="$us1" -v max="$max" -v max1="$max1" -v held="$held" 'BEGIN {
            printf "sweep %5d parked @5000/s: %s, p99 %.2f ms, max %.2f ms, server CPU %.1f us/msg (x%.2f of 1000); closed loop %.0f msg/s (x%.2f of 1000)",
                n, (held ? "rate held" : sprintf("rate NOT held (%.0f/s in %.2f s)", rate_sent, send_s)), p99_ms, max_ms,
                server_us_per_msg, (us1 > 0 ? server_us_per_msg / us1 : 0), max, (max1 > 0 ? max / max1 : 0) }')
        if [ "$n" = 9000 ]; then
            verdict=$(awk -v held="$held" -v p99="$p99" -v us="$us" -v us1="$us1" -v max="$max" -v max1="$max1" \
                -v st="$st$st2" 'BEGIN {
                ok = (st == "00") && held && p99 + 0 < 2 && us1 > 0 && us / us1 <= 1.3 && max1 > 0 && max / max1 >= 0.8;
                printf "  targets (held, p99 <2 ms, CPU <=1.3x, rate >=0.8x) %s", (st != "00" ? "INVALID" : (ok ? "PASS" : "BELOW")) }')
            row="$row$verdict"
        fi
        SWEEP_ROWS+=("$row")
    done
    msg_figure "RSS per parked receive (9000)" "sweep: RSS of 9000 parked receives" "$TMP/sweep-mem.out" 'BEGIN {
        printf "%s: %.0f bytes each (%.0f the idle connection + %.0f the parked request; all %d answered by a message)",
            l, per_poll_bytes, per_conn_bytes, per_request_bytes, received }' \
        --mode memory --waiters 9000 --wait 120 --prefix swr-
    SWEEP_ROWS+=("$MSG_ROW")
    if msg_start_rollcall "sweep: RSS of 9000 idle event streams"; then
        out="$TMP/sweep-streams.out"
        echo
        echo "=== sweep: 9000 idle event streams: ${WRK_CPU[*]:+${WRK_CPU[*]} }msgload --mode streams --streams 9000 --hold 2"
        "${WRK_CPU[@]}" timeout 300 "$MSGLOAD" --port "$RC_PORT" --pid "$RC_PID" --mode streams --streams 9000 \
            --hold 2 --timeout 240 >"$out" 2>&1 </dev/null
        sed 's/^/  /' "$out" | tail -6
        stop_rollcall
        if [ "$(msg_field "$out" measured)" = 1 ]; then
            SWEEP_ROWS+=("$(msg_awk "$out" 'BEGIN {
                printf "RSS per idle event stream (9000): %.0f bytes each (VmRSS %.1f -> %.1f MB)", per_stream_bytes,
                    rss_before_kb / 1024, rss_open_kb / 1024 }')")
        else
            SWEEP_ROWS+=("RSS per idle event stream (9000): NOT MEASURED")
            problem "sweep: msgload --mode streams 9000 could not measure"
        fi
    fi
}

# -------------------------------------------------------------- events ---
# Events: what 1,000 idle event streams cost, on one fresh rollcall (started
# as for the messages figures). wrk GET /v1/names/bench (the same settings
# as every wrk figure) without streams; then msgload --mode streams opens
# 1,000 streams (GET /v1/events, Accept: text/event-stream, one keep-alive
# connection each; the first block of each must be "retry: 1000"), reads
# VmRSS before and with them once the server has settled, and holds them
# open and idle (reading and discarding) while wrk runs the same GET again;
# then one registry change (POST /v1/sessions) must reach every stream, as
# the first event each sees after it (counted, with how long it took).
# Targets: VmRSS with the streams minus before < 10 MB; GET req/s with the
# streams / without >= 0.90.

EVENT_ROWS=()

bench_events() {
    local n=1000 labels=("GET names/bench, no streams" "GET names/bench, 1000 streams")
    local out="$TMP/events.out" rps0="" rps1="" ml i st l
    local rlabel="RSS $n idle event streams" glabel="GET rate with/without $n streams"
    local flabel="event fan-out to $n streams" why="" ROLLCALL_SESSION="" ROLLCALL_TOKEN=""
    if ! build_msgload; then
        why="msgload.c did not build"
    elif ! msg_start_rollcall events; then
        why="rollcall did not start"
    elif ! prepare_rollcall "setup requests for the event figures" prepare.py; then
        why="setup failed"
    fi
    if [ -n "$why" ]; then
        not_measured "${labels[@]}"
        for l in "$glabel" "$rlabel" "$flabel"; do EVENT_ROWS+=("$l: NOT MEASURED ($why)"); done
        return
    fi
    local base="http://127.0.0.1:$RC_PORT"
    wrk_figure "${labels[0]}" "$base/v1/names/bench" "" "" "baseline for the streams"
    rps0=$W_RPS
    if ! kill -0 "$RC_PID" 2>/dev/null; then
        not_measured "${labels[1]}"
        for l in "$glabel" "$rlabel" "$flabel"; do EVENT_ROWS+=("$l: NOT MEASURED (rollcall died)"); done
        return
    fi
    echo
    echo "=== event streams: ${WRK_CPU[*]:+${WRK_CPU[*]} }msgload --mode streams --streams $n (held while wrk runs)"
    "${WRK_CPU[@]}" "$MSGLOAD" --port "$RC_PORT" --pid "$RC_PID" --mode streams --streams "$n" \
        --hold $((SECS * 2 + 60)) --timeout $((SECS * 3 + 120)) >"$out" 2>&1 </dev/null &
    ml=$!
    PIDS+=("$ml")
    for i in $(seq 600); do  # READY within 60 s
        grep -q '^msgload: READY' "$out" && break
        kill -0 "$ml" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^msgload: READY' "$out" && kill -0 "$ml" 2>/dev/null; then
        sed 's/^/  /' "$out"
        wrk_figure "${labels[1]}" "$base/v1/names/bench" "" "" "while $n streams are open"
        rps1=$W_RPS
        kill -USR1 "$ml" 2>/dev/null
    else
        not_measured "${labels[1]}"
    fi
    for i in $(seq 300); do kill -0 "$ml" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$ml"; forget_pid "$ml"
    echo
    echo "=== event streams: the rest of msgload's output"
    sed -n '/^msgload: READY/,$p' "$out" | sed '1d; s/^/  /'
    grep -q '^msgload: READY' "$out" || sed 's/^/  /' "$out"
    rollcall_alive "the event stream figures" || true
    stop_rollcall

    if [ "$(msg_field "$out" measured)" != 1 ]; then
        problem "event streams: msgload could not measure: $(sed -n 's/^msgload: FATAL: //p' "$out" | head -1)"
        for l in "$glabel" "$rlabel" "$flabel"; do EVENT_ROWS+=("$l: NOT MEASURED (msgload failed)"); done
        return
    fi
    st=ok
    if [ "$(msg_field "$out" clean)" != 1 ]; then
        st=invalid
        problem "event streams: $(msg_awk "$out" -v n="$n" 'BEGIN {
            printf "%s of %s opened right, %s still open at the end, %s reached by the change, %s unexpected events, %s stream errors",
                ready, n, alive, reached, unexpected_events, stream_errors }') (see msgload's ERROR lines above)"
    fi
    if [ -n "$rps0" ] && [ -n "$rps1" ]; then
        EVENT_ROWS+=("$(awk -v l="$glabel" -v a="$rps1" -v b="$rps0" -v st="$st" 'BEGIN {
            r = a / b;
            printf "%s: %.2f (%.0f req/s with the streams open and idle, %.0f without; same rollcall, same wrk settings)  target >=0.90 %s",
                l, r, a, b, (st != "ok" ? "INVALID" : (r >= 0.9 ? "PASS" : "BELOW")) }')")
    else
        EVENT_ROWS+=("$glabel: NOT MEASURED (a wrk run failed)")
    fi
    EVENT_ROWS+=("$(msg_awk "$out" -v l="$rlabel" -v st="$st" 'BEGIN {
        printf "%s: +%.1f MB (%.0f bytes per stream; VmRSS %.1f -> %.1f MB; /v1/stats streams_open %d)  target <10 MB %s",
            l, delta_kb / 1024, per_stream_bytes, rss_before_kb / 1024, rss_open_kb / 1024, streams_open_stat,
            (st != "ok" ? "INVALID" : (delta_kb / 1024 < 10 ? "PASS" : "BELOW")) }')")
    EVENT_ROWS+=("$(msg_awk "$out" -v l="$flabel" -v n="$n" 'BEGIN {
        printf "%s: one change (POST /v1/sessions) reached %d of %d streams, p50 %.2f ms, last %.2f ms after the request; %d other events  target all %d %s",
            l, reached, n, fanout_p50_ms, fanout_max_ms, unexpected_events, n,
            (reached == n && unexpected_events == 0 ? "PASS" : "FAIL") }')")
}

# --------------------------------------------------------------- calls ---
# Calls: request and reply, measured by msgload --mode calls, each figure on
# a fresh rollcall (as the messages figures, msgload on CPU 1). 16 responder
# sessions join the group bench-calls; each long-polls its mailbox (wait=30,
# max=1000) and replies at once to each message, POST /v1/replies/{reply_to}
# {"body": <the message's body>}, over a reply connection of its own. 1,000
# caller connections POST /v1/call {"to":{"group":"bench-calls","pick":
# "round_robin"},"body":{"c":<caller>,"k":<n>},"timeout_ms":5000}, each with
# one call at a time, and check that each answer is 200 with their own body
# and a "from". After each run the calls in flight finish, and GET /v1/stats
# must show calls.pending 0 (and nothing timed out or gone).
#   1. calls/s: closed loop (a caller calls again as soon as it is answered),
#      counted over BENCH_SECONDS s after 1 s of warm-up; target >= 10,000/s.
#      Its round trip is printed but has no target: with 1,000 callers always
#      waiting, the mean round trip is 1,000 / (calls/s) (Little's law: 100 ms
#      at 10,000/s), whatever the server does.
#   2. round trip: open loop, 10,000 calls/s (the throughput target) for 5 s
#      spread over the same 1,000 caller connections (a call goes to a caller
#      with none in flight); the round trip counts from when the call is
#      written; target p99 < 5 ms, with the rate held (the calls made on
#      schedule, 2% slack).

CALL_ROWS=()
CALL_RATE=10000

bench_calls() {
    local label="calls 1000 callers -> 16 responders"
    local llabel="call round trip 1000 callers @${CALL_RATE}/s"
    if ! build_msgload; then
        CALL_ROWS+=("$label: NOT MEASURED (msgload.c did not build)" "$llabel: NOT MEASURED (msgload.c did not build)")
        return
    fi
    msg_figure "$label" "$label (closed loop)" "$TMP/calls.out" 'BEGIN {
        printf "%s: %.0f calls/s (closed loop, %ss; round trip p50 %.1f ms, p99 %.1f ms = 1000 callers / rate; rollcall CPU %d%%, %.1f us per call, waited %d ms for a CPU); /v1/stats after: pending %d, answered %d, timed_out %d; %d failed  target >=10000/s %s, pending 0 %s",
            l, rate, secs, p50_ms, p99_ms, cpu_server, server_us_per_call, server_cpu_wait_ms, pending,
            stat_answered, timed_out, errors,
            (st != 0 ? "INVALID" : (rate + 0 >= 10000 ? "PASS" : "BELOW")), (pending == 0 ? "PASS" : "FAIL") }' \
        --mode calls --callers 1000 --responders 16 --seconds "$SECS" --warmup 1
    CALL_ROWS+=("$MSG_ROW")
    msg_figure "$llabel" "$llabel (open loop)" "$TMP/calls-latency.out" 'BEGIN {
        held = (made + 0 == scheduled + 0 && send_s + 0 <= 5 * 1.02);
        printf "%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (open loop: %d of %d calls made in %.2f s, %d answered, %.0f/s, rate %s; pending after %d; rollcall CPU %d%%, waited %d ms for a CPU)  target p99 <5 ms %s",
            l, p50_ms, p99_ms, max_ms, made, scheduled, send_s, answered, rate, (held ? "held" : "NOT held"), pending,
            cpu_server, server_cpu_wait_ms,
            (st != 0 ? "INVALID" : (!held ? "BELOW (rate not held)" : (p99_ms + 0 < 5 ? "PASS" : "BELOW"))) }' \
        --mode calls --callers 1000 --responders 16 --rate "$CALL_RATE" --seconds 5
    CALL_ROWS+=("$MSG_ROW")
}

# ----------------------------------------------------------------- main ---
echo "rollcall benchmark: $BIN"
echo "wrk settings for every figure: $WRK_DESC${WRK_CPU[*]:+ (wrk on CPU 1, server on CPU 0)}"
bench_nginx
bench_rollcall
bench_groups
bench_memory
bench_memory_groups
bench_messages
bench_events
bench_calls

echo
echo "=== results ($WRK_DESC; ratio = req/s / nginx req/s)"
printf '%-32s %9s %9s %7s  %s\n' "figure" "req/s" "p99" "ratio" "target"
for row in "${ROWS[@]}"; do echo "$row" | sed 's/ *$//'; done
echo "$MEM_ROW  (target applies to VmRSS after loading)"
echo "$GMEM_ROW"
for row in "${MSG_ROWS[@]}"; do echo "$row"; done
for row in "${SWEEP_ROWS[@]}"; do echo "$row"; done
for row in "${EVENT_ROWS[@]}"; do echo "$row"; done
for row in "${CALL_ROWS[@]}"; do echo "$row"; done
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo
    echo "problems:"
    for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
fi
exit $FAILED

#!/usr/bin/env bash
# sluice-shipper against Elastic's go-lumber server (ljpeer): the wire decision
# of docs/protocol.md §6 seen from a real Beats peer.
#
#   - compression: zlib sends standard C frames, one per window, each a whole
#     zlib stream of its own (no state carried from window to window), so
#     go-lumber, like Logstash, decodes every window at every level; level 0
#     sends bare J frames, as Filebeat does.
#   - compression: zstd (Z) and zstd_stream (S) are sluice-to-sluice only:
#     go-lumber refuses the unknown frame type, closes the connection and ACKs
#     nothing, so nothing is lost (the shipper keeps retrying).
#
#   tests/interop/shipper.sh             # builds build/interop/ljpeer if missing
#   SLUICE_BUILD=build/asan N=3000 tests/interop/shipper.sh
#
# Exit 0 = all cases passed. Env: SLUICE_BUILD (dir holding sluice-shipper),
# LJPEER, N (lines), DEADLINE (seconds per case), KEEP_TMP=1.
set -euo pipefail

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH= cd -- "$here/../.." && pwd)
BIN=${LJPEER:-$root/build/interop/ljpeer}
SHIPPER=${SLUICE_BUILD:-$root/build}/sluice-shipper
N=${N:-3000}
DEADLINE=${DEADLINE:-60}

[ -x "$SHIPPER" ] || { echo "shipper.sh: no $SHIPPER (make first)" >&2; exit 2; }
if [ ! -x "$BIN" ]; then
    "$here/build" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ljpeer-shipper.XXXXXX")
pids=()
cleanup() {
    stop_all
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail() {
    echo "shipper.sh: FAIL: $*" >&2
    for f in "$tmp"/*.log; do
        [ -s "$f" ] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

now() { date +%s; }

# Lines with what JSON escaping and UTF-8 handling must carry through.
python3 - "$tmp/lines.txt" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(f'{i} GET /x?q="{i}" \\ ünïcødé ☃ <b>&amp;</b> \t tab' + ("y" * (i % 700)) + "\n")
PY

# stop_all: SIGTERM to this case's processes (by PID), then wait for them.
stop_all() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}

# start_server NAME: starts ljpeer server, sets $addr, records the pid.
start_server() {
    local name=$1
    "$BIN" server -listen 127.0.0.1:0 -out "$tmp/$name.out.jsonl" -quiet \
        >"$tmp/$name.server.stdout" 2>"$tmp/$name.server.log" &
    pids+=($!)
    local deadline=$(( $(now) + 20 )) first
    addr=
    while [ -z "$addr" ]; do
        first=$(head -n 1 "$tmp/$name.server.stdout" 2>/dev/null || true)
        case $first in "listening "*) addr=${first#listening } ;; esac
        [ "$(now)" -lt "$deadline" ] || fail "$name: ljpeer did not start"
        sleep 0.05
    done
}

# start_shipper NAME COMPRESSION LEVEL: ships app.log to $addr, windows of 50, 4 in flight.
start_shipper() {
    local name=$1 comp=$2 level=$3 level_line=
    [ -n "$level" ] && level_line="  compression_level: $level"
    mkdir -p "$tmp/$name.logs"
    cp "$tmp/lines.txt" "$tmp/$name.logs/app.log"
    cat >"$tmp/$name.yml" <<EOF
inputs:
  - paths: ["$tmp/$name.logs/*.log"]
    start_position: beginning
output:
  hosts: ["$addr"]
  compression: $comp
$level_line
  bulk_max_events: 50
  pipelining: 4
  flush_interval: 100ms
  backoff: {init: 100ms, max: 300ms}
registry: {path: "$tmp/$name.reg", flush: 100ms}
metrics: {listen: "127.0.0.1:0"}
EOF
    "$SHIPPER" -c "$tmp/$name.yml" 2>"$tmp/$name.shipper.log" &
    pids+=($!)
}

# Every line arrived exactly once, whole: message and log.offset as sent.
check_delivery() {  # out.jsonl
    python3 - "$tmp/lines.txt" "$1" <<'PY'
import json, sys
want = {}
off = 0
with open(sys.argv[1], "rb") as f:
    for raw in f:
        want[off] = raw.rstrip(b"\n").decode("utf-8")
        off += len(raw)
got = {}
with open(sys.argv[2], encoding="utf-8") as f:
    for line in f:
        e = json.loads(line)
        key = e["log"]["offset"]
        if key in got:
            sys.exit(f"duplicate event at offset {key}")
        got[key] = e["message"]
if got != want:
    bad = [k for k in want if got.get(k) != want[k]][:3]
    sys.exit(f"{len(got)} events, want {len(want)}; first differences at offsets {bad}")
PY
}

lines_in() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

run_zlib() {  # name level
    local name=$1 level=$2
    start_server "$name"
    start_shipper "$name" zlib "$level"
    local out="$tmp/$name.out.jsonl" deadline=$(( $(now) + DEADLINE ))
    while [ "$(lines_in "$out")" -lt "$N" ]; do
        [ "$(now)" -lt "$deadline" ] || fail "$name: $(lines_in "$out") of $N events in ${DEADLINE}s"
        sleep 0.1
    done
    sleep 0.3  # anything beyond N (a duplicate) would show now
    check_delivery "$out" || fail "$name: delivery"
    stop_all
    echo "shipper.sh: $name: pass ($N events, $((N / 50)) windows)"
}

run_refused() {  # name compression
    local name=$1 comp=$2
    start_server "$name"
    start_shipper "$name" "$comp" ""
    local deadline=$(( $(now) + DEADLINE ))
    # go-lumber closes (or resets) the connection; the shipper resends on a new one.
    while [ "$(grep -c 'unACKed events will be resent' "$tmp/$name.shipper.log" || true)" -lt 2 ]; do
        [ "$(now)" -lt "$deadline" ] || fail "$name: go-lumber did not close the connection"
        sleep 0.1
    done
    [ "$(lines_in "$tmp/$name.out.jsonl")" -eq 0 ] || fail "$name: go-lumber accepted '$comp' frames"
    stop_all
    echo "shipper.sh: $name: pass (go-lumber refuses $comp, nothing ACKed, shipper retries)"
}

run_zlib zlib-default ""   # level 3, Filebeat's default
run_zlib zlib-1 1
run_zlib zlib-9 9
run_zlib zlib-0-bare-J 0
run_refused zstd-refused zstd
run_refused zstd-stream-refused zstd_stream
echo "shipper.sh: all passed"

#!/usr/bin/env bash
# Self-test of the go-lumber reference peer (ljpeer) against itself:
# start `ljpeer server` on an OS-chosen port, send N events with `ljpeer client`,
# and check the server's output file holds exactly those events (each once).
#
#   tests/interop/selftest.sh            # builds build/interop/ljpeer if missing
#   LJPEER=/path/to/ljpeer N=10000 tests/interop/selftest.sh
#
# Exit 0 = all cases passed; non-zero on any mismatch, error or timeout.
set -euo pipefail

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH= cd -- "$here/../.." && pwd)
BIN=${LJPEER:-$root/build/interop/ljpeer}
N=${N:-10000}
START_DEADLINE=${START_DEADLINE:-20}   # seconds to wait for the 'listening' line
CLIENT_DEADLINE=${CLIENT_DEADLINE:-120}
STOP_DEADLINE=${STOP_DEADLINE:-10}

if [ ! -x "$BIN" ]; then
    "$here/build" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ljpeer-selftest.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail() {
    echo "selftest: FAIL: $*" >&2
    for f in "$tmp"/*.err; do
        [ -s "$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

now() { date +%s; }

# Events: mixed shapes, unicode, HTML-ish characters, integers beyond 2^53.
python3 - "$tmp/in.jsonl" "$N" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        ev = {
            "@timestamp": "2024-05-01T12:00:%02d.%03dZ" % (i % 60, i % 1000),
            "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.13.0"},
            "message": "line %d <a href=\"x\">&amp;</a> ünïcødé ☃ \t tab" % i,
            "log": {"offset": i * 4096 + 9007199254740993, "file": {"path": "/var/log/app.log"}},
            "seq": i,
        }
        if i % 7 == 0:
            ev["tags"] = ["a", "b", None, True, 1.5]
        if i % 11 == 0:
            ev["message"] = "x" * (i % 5000)
        f.write(json.dumps(ev, ensure_ascii=False) + "\n")
PY

check_output() {  # in out
    python3 - "$1" "$2" <<'PY'
import json, sys, collections
def load(p):
    c = collections.Counter()
    lines = 0
    with open(p, encoding="utf-8") as f:
        for line in f:
            lines += 1
            c[json.dumps(json.loads(line), sort_keys=True)] += 1
    return c, lines
want, nw = load(sys.argv[1])
got, ng = load(sys.argv[2])
if want != got:
    missing = sum((want - got).values()); extra = sum((got - want).values())
    print(f"mismatch: sent {nw} events, server file has {ng} lines; "
          f"missing {missing}, unexpected/duplicate {extra}", file=sys.stderr)
    sys.exit(1)
print(f"ok: {ng} events, identical multiset")
PY
}

run_case() {  # name, server args..., --, client args...
    local name=$1; shift
    local sargs=() cargs=()
    while [ "$1" != "--" ]; do sargs+=("$1"); shift; done
    shift; cargs=("$@")
    local out="$tmp/$name.out.jsonl"

    "$BIN" server -listen 127.0.0.1:0 -out "$out" "${sargs[@]}" \
        >"$tmp/$name.server.stdout" 2>"$tmp/$name.server.err" &
    server_pid=$!

    local addr= deadline=$(( $(now) + START_DEADLINE )) first
    while :; do
        first=$(head -n 1 "$tmp/$name.server.stdout" 2>/dev/null || true)
        case $first in
            "listening "*) addr=${first#listening }; break ;;
        esac
        kill -0 "$server_pid" 2>/dev/null || fail "$name: server exited before listening"
        [ "$(now)" -lt "$deadline" ] || fail "$name: no 'listening' line within ${START_DEADLINE}s"
        sleep 0.05
    done

    local acked rc=0
    acked=$(timeout "$CLIENT_DEADLINE" "$BIN" client -addr "$addr" -in "$tmp/in.jsonl" "${cargs[@]}" \
        2>"$tmp/$name.client.err") || rc=$?
    [ "$rc" -eq 0 ] || fail "$name: client exit $rc (stdout: $acked)"
    [ "$acked" = "acked $N" ] || fail "$name: client printed '$acked', want 'acked $N'"

    # The server fsyncs each batch before ACKing it, so the file is complete now.
    check_output "$tmp/in.jsonl" "$out" || fail "$name: output mismatch"

    kill -TERM "$server_pid"
    deadline=$(( $(now) + STOP_DEADLINE ))
    while kill -0 "$server_pid" 2>/dev/null; do
        [ "$(now)" -lt "$deadline" ] || fail "$name: server did not stop within ${STOP_DEADLINE}s of SIGTERM"
        sleep 0.05
    done
    rc=0; wait "$server_pid" || rc=$?
    server_pid=
    [ "$rc" -eq 0 ] || fail "$name: server exit status $rc after SIGTERM"
    echo "selftest: $name: pass ($acked, server $addr)"
}

# The required case: 10k events, windows of 500, zlib level 3, 4 windows in flight.
run_case async-zlib3 -quiet -- -batch 500 -compress 3 -pipeline 4 -quiet
# Sync client, bare J frames, odd window size, against the muxing v1+v2 server.
run_case sync-plain-v1mux -v1 -quiet -- -batch 777 -compress 0 -pipeline 1 -quiet
# Async with raw (key-order-preserving) server output and max compression.
run_case async-zlib9-raw -raw -quiet -- -batch 2048 -compress 9 -pipeline 2 -quiet

echo "selftest: all passed"

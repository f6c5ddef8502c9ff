#!/usr/bin/env python3
"""Persisted queue benchmark (issue #14): figures, never a verdict.

The same load as pipeline_bench.py (tests/bench/ljblast.c sending pre-encoded
zstd windows of Filebeat-shaped Apache events as fast as they are ACKed; file
output to /dev/null), through one aggregator process per row:

  memory            queue.type memory (the default): the ACK waits for the output
  memory 16k        the same with pipeline.max_pending_events 16384, the default
                    the persisted queue takes (it holds windows waiting for fsync)
  pq fsync/window   queue.type persisted, checkpoint.writes 1 (the default): the
                    ACK waits for the fsync covering the window (group commit)
  pq interval       persisted, checkpoint.writes 100000000 and interval 20ms:
                    one fsync every 20 ms (ACKs wait for it)

each with no filters (the queue's cost is then most visible) and with the
grok + date + mutate pipeline of pipeline_bench.py. Rows run interleaved,
`--repeat` times; the median of each is printed: events ACKed per second (first
byte sent to last ACK), events delivered per second (until the queue is empty:
with the persisted queue ACKed comes before delivered), aggregator CPU
seconds per million events until then (utime+stime, writer thread included), the CPU
ratio to the memory row of the same filters, and fsyncs (count, mean ms).

    python3 tests/bench/pq_bench.py [--events N] [--repeat N] [--dir DIR]

The queue directory is on --dir (default: a temporary directory under
$TMPDIR): what fsync costs is that file system's business, so the report
names it.
"""

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BUILD, corpus, free_port, proc_stat, wait  # noqa: E402
from pipeline_bench import FILTERS, blast, build_ljblast, loadavg, start_aggregator  # noqa: E402

QUEUES = {
    "memory": "",
    "memory 16k": "",
    "pq fsync/window": "queue: {type: persisted, path: \"%s\"}\n",
    "pq interval": ("queue: {type: persisted, path: \"%s\", "
                    "checkpoint: {writes: 100000000, interval: 20ms}}\n"),
}


def metrics(port):
    import urllib.request
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
    return out


def start(workdir, tag, queue, filters, qdir, output="/dev/null"):
    pending = "  max_pending_events: 16384\n" if queue == "memory 16k" else ""
    return start_aggregator(workdir, tag, FILTERS[filters], 1, output, extra=pending,
                            tail=QUEUES[queue] % qdir if QUEUES[queue] else "")


def row(ljblast, path, workdir, queue, filters, events, opts, i):
    tag = f"{queue.replace(' ', '-').replace('/', '-')}-{filters}-{i}"
    qdir = os.path.join(opts.dir, f"q-{tag}")
    p, lj, am, log = start(workdir, tag, queue, filters, qdir)
    try:
        cpu0, _ = proc_stat(p.pid)
        t0 = time.monotonic()
        r = blast(ljblast, lj, path, events, workdir, tag, opts.distinct, opts.window,
                  opts.pipelined, opts.connections)
        # ACKed is not delivered with the persisted queue: the clock and the CPU
        # run until the outputs have every event (the queue is empty).
        wait(lambda: metrics(am).get("sluice_aggregator_queue_events", 0) == 0, 600,
             "the queue to drain")
        t1 = time.monotonic()
        cpu1, hwm = proc_stat(p.pid)
        m = metrics(am)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        log.close()
        shutil.rmtree(qdir, ignore_errors=True)
    n = int(r["events"])
    fs_n = m.get("sluice_aggregator_queue_fsync_seconds_count", 0)
    fs_s = m.get("sluice_aggregator_queue_fsync_seconds_sum", 0)
    return dict(eps=n / float(r["seconds"]), e2e=n / (t1 - t0), cpu=(cpu1 - cpu0) / n * 1e6, hwm=hwm,
                fsyncs=fs_n, fsync_ms=fs_s / fs_n * 1e3 if fs_n else 0)


def sizes(ljblast, path, workdir, opts):
    """Bytes per event as queued (the client's JSON) and as the filters leave it (the
    file output's lines): what queueing before or after the filters would write."""
    out = os.path.join(workdir, "sizes.ndjson")
    p, lj, am, log = start(workdir, "sizes", "memory", "pipeline", "", output=out)
    try:
        r = blast(ljblast, lj, path, 20480, workdir, "sizes", 20480, 2048, 1, 1)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        log.close()
    return float(r["json_bytes_per_event"]), os.path.getsize(out) / int(r["events"])


def fstype(path):
    r = subprocess.run(["df", "-T", path], stdout=subprocess.PIPE, text=True)
    lines = r.stdout.strip().splitlines()
    return lines[-1].split()[1] if len(lines) > 1 else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=int(os.environ.get("BENCH_PQ_EVENTS",
                                                                     500000)))
    ap.add_argument("--lines", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--distinct", type=int, default=20000)
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--pipelined", type=int, default=2)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--dir", default=None)
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-pqbench-")
    opts.dir = opts.dir or work
    path = corpus(opts.lines)
    print("\n== Persisted queue (issue #14) ==")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; load "
          f"average at start {loadavg()}; queue on {opts.dir} ({fstype(opts.dir)})")
    print(f"{opts.events} events per row, windows of {opts.window}, {opts.connections} "
          f"connections x {opts.pipelined} windows in flight, workers 1, file output to "
          f"/dev/null; median of {opts.repeat} interleaved runs")
    ljblast = build_ljblast()
    res = {}
    for i in range(opts.repeat):
        for filters in ("none", "pipeline"):
            for queue in QUEUES:
                res.setdefault((queue, filters), []).append(
                    row(ljblast, path, work, queue, filters, opts.events, opts, i))
    print(f"\n{'row':36} {'ACKed/s':>9} {'delivered/s':>12} {'agg CPU s/M':>12} "
          f"{'CPU vs memory':>14} {'fsyncs':>7} {'mean fsync':>11} {'peak RSS':>9}")
    for filters in ("none", "pipeline"):
        base = statistics.median(r["cpu"] for r in res[("memory", filters)])
        for queue in QUEUES:
            rs = res[(queue, filters)]
            cpu = statistics.median(r["cpu"] for r in rs)
            eps = statistics.median(r["eps"] for r in rs)
            e2e = statistics.median(r["e2e"] for r in rs)
            fs = statistics.median(r["fsyncs"] for r in rs)
            fms = statistics.median(r["fsync_ms"] for r in rs)
            hwm = max(r["hwm"] for r in rs)
            name = f"{queue} ({'no filters' if filters == 'none' else 'grok+date+mutate'})"
            print(f"{name:36} {eps:9,.0f} {e2e:12,.0f} {cpu:12.2f} {cpu / base:13.2f}x "
                  f"{fs:7.0f} {fms:9.2f}ms {hwm / 1e6:7.1f}MB")
    raw, filtered = sizes(ljblast, path, work, opts)
    print(f"bytes per event: {raw:.0f} as received (what the queue stores), {filtered:.0f} "
          f"after grok+date+mutate (what queueing after the filters would store)")
    print(f"load average after: {loadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

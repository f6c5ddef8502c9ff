#!/usr/bin/env python3
"""es_bench.py: figures for the elasticsearch output, never a verdict.

Pushes N Beats-shaped events (~450 bytes of JSON each) through
sluice-aggregator's elasticsearch output into a real OpenSearch 2.19
(tests/servers/opensearch), then, in the same run and against the same
server, posts the same NDJSON with `curl --data-binary` to _bulk (the floor:
no encoding, no ACK bookkeeping). Prints events/s, aggregator CPU seconds per
million events, peak RSS, the OpenSearch JVM's CPU in each run, and the ratio.

The events reach the aggregator as uncompressed Lumberjack windows from this
script (2048 events each, 8 in flight, pipeline.max_pending_events 16384), so the figure is the output's, not
the shipper's. The aggregator gzips its requests (its default) unless
--no-compression; curl sends the bodies as they are, `--parallel` requests
at a time (default 2, like the output's `workers`), each of at most
bulk_max_bytes.

    python3 tests/bench/es_bench.py --events 200000
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from ljclient import LJClient, encode_window  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build"))
CACHE = os.environ.get("SLUICE_CACHE", os.path.join(ROOT, ".cache"))
SERVER = os.path.join(ROOT, "tests", "servers", "opensearch")
TEMPLATE = os.path.join(ROOT, "tests", "data", "es-template.json")
CLK_TCK = os.sysconf("SC_CLK_TCK")
WINDOW = 2048
INFLIGHT = 8
MAX_BYTES = 5 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    """(cpu seconds, peak RSS bytes) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def jvm_cpu():
    pidfile = os.path.join(os.environ.get("OPENSEARCH_RUN_DIR") or
                           os.path.join(os.environ.get("SLUICE_RUN_DIR") or
                                        os.path.join(CACHE, "run"), "opensearch"), "pid")
    try:
        return proc_stat(int(open(pidfile).read().strip()))[0]
    except (OSError, ValueError):
        return float("nan")


def rest(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def count(url, index):
    rest(f"{url}/{index}/_refresh", "POST")
    return rest(f"{url}/{index}/_count")["count"]


def events(n):
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0", "curl/8.4.0"]
    out = []
    for i in range(n):
        out.append({
            "@timestamp": f"2026-11-27T06:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}."
                          f"{i % 1000:03d}Z",
            "@metadata": {"beat": "sluice", "type": "_doc", "version": "0.1.0"},
            "message": f'10.{i % 250}.{(i // 250) % 250}.7 - - [27/Nov/2026:06:00:00 +0000] '
                       f'"GET /api/v1/items?id={i} HTTP/1.1" {(200, 304, 404)[i % 3]} {i % 99999} '
                       f'"https://example.com/" "{agents[i % 2]}"',
            "log": {"file": {"path": "/var/log/app/access.log"}, "offset": i * 190},
            "input": {"type": "filestream"},
            "host": {"name": "bench-1"},
            "agent": {"type": "sluice-shipper", "version": "0.1.0", "name": "bench-1"},
            "ecs": {"version": "8.0.0"},
        })
    return out


def read_ack(c):
    """The next window ACK, skipping the keepalive ACK 0s a slow window gets."""
    while True:
        (_, seq), = c.read_acks(1)
        if seq:
            return seq


def run_aggregator(url, evs, index, compression, workdir):
    lj, am = free_port(), free_port()
    cfg = os.path.join(workdir, "agg.yml")
    with open(cfg, "w") as f:
        # max_pending_events: enough held events for requests near bulk_max_bytes, as
        # curl's (the default, batch_size * workers * 4, caps requests at ~1 MB here).
        f.write(f"""input: {{listen: "127.0.0.1:{lj}", max_pending_windows: 64}}
pipeline: {{max_pending_events: {WINDOW * INFLIGHT}}}
outputs:
  - elasticsearch:
      hosts: ["{url}"]
      index: "{index}"
      compression: {"true" if compression else "false"}
      template: {{name: sluice-test, file: "{TEMPLATE}"}}
      dead_letter_path: "{workdir}/dlq"
metrics: {{listen: "127.0.0.1:{am}"}}
""")
    windows = [encode_window(evs[i:i + WINDOW]) for i in range(0, len(evs), WINDOW)]
    log = open(os.path.join(workdir, "aggregator.log"), "wb")
    agg = subprocess.Popen([os.path.join(BUILD, "sluice-aggregator"), "-c", cfg], stderr=log)
    try:
        end = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", lj)) != 0:
            if time.monotonic() > end or agg.poll() is not None:
                raise RuntimeError("aggregator did not start")
            time.sleep(0.02)
        # Warm-up: the template is installed and the index created before timing.
        c = LJClient(lj, timeout=300)
        c.send(encode_window(evs[:1]))
        read_ack(c)
        cpu0, _ = proc_stat(agg.pid)
        jvm0 = jvm_cpu()
        t0 = time.monotonic()
        sent = acked = 0
        while acked < len(windows):
            while sent < len(windows) and sent - acked < INFLIGHT:
                c.send(windows[sent])
                sent += 1
            read_ack(c)
            acked += 1
        dt = time.monotonic() - t0
        cpu1, rss = proc_stat(agg.pid)
        jvm1 = jvm_cpu()
        c.sock.close()
    finally:
        agg.send_signal(signal.SIGTERM)
        agg.wait(60)
        log.close()
    n = count(url, index)
    if n != len(evs) + 1:
        raise RuntimeError(f"{index}: {n} documents, expected {len(evs) + 1}")
    return dict(seconds=dt, cpu=cpu1 - cpu0, rss=rss, jvm=jvm1 - jvm0)


def bulk_files(evs, index, workdir):
    """The same NDJSON the output sends (action + document without @metadata),
    cut into bodies of at most MAX_BYTES."""
    action = json.dumps({"index": {"_index": index}}, separators=(",", ":")).encode() + b"\n"
    files, cur, size = [], [], 0
    for e in evs:
        doc = {k: v for k, v in e.items() if k != "@metadata"}
        item = action + json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        if cur and size + len(item) > MAX_BYTES:
            files.append(b"".join(cur))
            cur, size = [], 0
        cur.append(item)
        size += len(item)
    if cur:
        files.append(b"".join(cur))
    paths = []
    for i, body in enumerate(files):
        p = os.path.join(workdir, f"bulk-{i:04d}.ndjson")
        with open(p, "wb") as f:
            f.write(body)
        paths.append(p)
    return paths


def run_curl(url, evs, index, parallel, workdir):
    paths = bulk_files(evs, index, workdir)
    rest(f"{url}/{index}", "PUT", {})  # created before timing, as the aggregator's warm-up
    jvm0 = jvm_cpu()
    t0 = time.monotonic()
    running, outs, todo = [], [], list(paths)
    cpu, rss = 0.0, 0
    # Peak RSS is read from /proc while each curl runs: wait4's ru_maxrss would
    # report this script's own size (subprocess vforks, and exec folds the
    # parent's high-water mark into the child's).
    while todo or running:
        while todo and len(running) < parallel:
            p = todo.pop(0)
            out = p + ".reply"
            outs.append(out)
            running.append(subprocess.Popen(
                ["curl", "-sS", "-o", out, "-H", "Content-Type: application/x-ndjson",
                 "--data-binary", "@" + p, f"{url}/_bulk"]))
        time.sleep(0.005)
        for p in list(running):
            try:
                rss = max(rss, proc_stat(p.pid)[1])
            except (OSError, IndexError):
                pass
            if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                continue
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode != 0:
                raise RuntimeError(f"curl exited {p.returncode}")
            cpu += ru.ru_utime + ru.ru_stime
            running.remove(p)
    dt = time.monotonic() - t0
    jvm1 = jvm_cpu()
    for out in outs:
        with open(out, "rb") as f:
            head = f.read(64)
        if not head.startswith(b'{"took":') or b'"errors":false' not in head:
            raise RuntimeError(f"curl _bulk reply with errors: {head!r}")
    n = count(url, index)
    if n != len(evs):
        raise RuntimeError(f"{index}: {n} documents, expected {len(evs)}")
    return dict(seconds=dt, cpu=cpu, rss=rss, jvm=jvm1 - jvm0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "200000")))
    ap.add_argument("--parallel", type=int, default=2, help="concurrent curl requests")
    ap.add_argument("--no-compression", action="store_true", help="aggregator sends plain NDJSON")
    ap.add_argument("--keep", action="store_true", help="keep the indices")
    args = ap.parse_args()

    was_running = subprocess.run([SERVER, "status"], capture_output=True).returncode == 0
    r = subprocess.run([SERVER, "start"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tests/servers/opensearch start failed:\n{r.stderr[-3000:]}")
    url = r.stdout.strip().splitlines()[-1]
    tag = uuid.uuid4().hex[:8]
    workdir = tempfile.mkdtemp(prefix="es-bench-")
    idx_agg, idx_curl = f"sluice-bench-{tag}-agg", f"sluice-bench-{tag}-curl"
    try:
        evs = events(args.events)
        os.makedirs(os.path.join(workdir, "agg"))
        os.makedirs(os.path.join(workdir, "curl"))
        agg = run_aggregator(url, evs, idx_agg, not args.no_compression,
                             os.path.join(workdir, "agg"))
        cur = run_curl(url, evs, idx_curl, args.parallel, os.path.join(workdir, "curl"))
    finally:
        if not args.keep:
            for idx in (idx_agg, idx_curl):
                try:
                    rest(f"{url}/{idx}", "DELETE")
                except Exception:  # noqa: BLE001 - best effort
                    pass
        shutil.rmtree(workdir, ignore_errors=True)
        if not was_running:
            subprocess.run([SERVER, "stop"], capture_output=True)

    n = args.events
    print(f"es_bench: {n} events (~{sum(len(json.dumps(e)) for e in evs[:1000]) // 1000} bytes "
          f"of JSON each) into OpenSearch at {url}, {os.cpu_count()} cores")
    print(f"{'':28}{'events/s':>12}{'CPU s/1M ev':>14}{'peak RSS MB':>13}{'JVM CPU s':>11}")
    for name, d in (("sluice-aggregator -> _bulk", agg), (f"curl x{args.parallel} --data-binary", cur)):
        print(f"{name:28}{n / d['seconds']:12.0f}{d['cpu'] / n * 1e6:14.2f}"
              f"{d['rss'] / 1048576:13.1f}{d['jvm']:11.1f}")
    print(f"ratio (aggregator / curl events/s): {cur['seconds'] / agg['seconds']:.2f}")


if __name__ == "__main__":
    main()

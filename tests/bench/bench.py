#!/usr/bin/env python3
"""make bench: figures, never a verdict.

Ships a generated corpus of Apache combined lines (~200 bytes each) from the
start of the file through sluice-shipper into sluice-aggregator (file output to
/dev/null), once per compression, and reports lines/s, MB/s, CPU seconds per
million lines and peak RSS of each daemon. Peers (rsyslog imfile, syslog-ng
file source) move the same file to a local TCP sink in the same run, so the
figures come with ratios: peers.py fetches their Debian packages once into
.cache/peers (unpacked, never installed) and runs them from there.
"""

import argparse
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from peers import describe, run_peer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build"))
CACHE = os.environ.get("SLUICE_CACHE", os.path.join(ROOT, ".cache"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus(lines):
    path = os.path.join(CACHE, "bench", f"access-{lines}.log")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rnd = random.Random(42)
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
              "curl/8.4.0", "Go-http-client/1.1", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"]
    paths = ["/", "/index.html", "/api/v1/items", "/static/app.js", "/login", "/search"]
    with open(path + ".tmp", "w") as f:
        for i in range(lines):
            ip = f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            f.write(f'{ip} - - [27/Nov/2026:06:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d} +0000] '
                    f'"GET {rnd.choice(paths)}?id={i} HTTP/1.1" {rnd.choice([200, 200, 200, 304, 404])} '
                    f'{rnd.randint(100, 99999)} "https://example.com/" "{rnd.choice(agents)}"\n')
    os.rename(path + ".tmp", path)
    return path


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


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def ljsink():
    """Builds (once) and starts the minimal Lumberjack sink; returns (proc, port)."""
    exe = os.path.join(BUILD, "ljsink")
    src = os.path.join(ROOT, "tests", "bench", "ljsink.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    p = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    return p, port


# What a Filebeat user typically puts on the agent (docs/benchmarks.md).
TYPICAL_PROCESSORS = """    processors:
      - add_host_metadata: ~
      - add_fields: {target: "", fields: {env: prod, team: web}}
      - drop_fields: {fields: [ecs, agent.version], ignore_missing: true}
      - drop_event: {when: {regexp: {message: "^DEBUG"}}}
"""


def run_sluice(path, lines, compression, workdir, target, processors="", filters="",
               agg_exe=None):
    """Ships the corpus into the aggregator (file output to /dev/null) or the sink,
    through processors (YAML of an input's processors: list) when given; the
    aggregator runs filters (YAML of a filters: list) on one worker when given."""
    lj, am, sm = free_port(), free_port(), free_port()
    tag = f"{target}-{compression}{'-procs' if processors else ''}{'-filters' if filters else ''}"
    agg_cfg = os.path.join(workdir, f"agg-{tag}.yml")
    ship_cfg = os.path.join(workdir, f"ship-{tag}.yml")
    with open(agg_cfg, "w") as f:
        f.write(f'input: {{listen: "127.0.0.1:{lj}"}}\noutputs:\n  - file: {{path: /dev/null}}\n'
                f'metrics: {{listen: "127.0.0.1:{am}"}}\n')
        if filters:
            f.write(f"pipeline:\n  workers: 1\n  filters:{filters}\n")
    log = open(os.path.join(workdir, f"{tag}.log"), "wb")
    if target == "sink":
        agg, lj = ljsink()
    else:
        agg = subprocess.Popen([agg_exe or os.path.join(BUILD, "sluice-aggregator"), "-c",
                                agg_cfg], stderr=log)
    reg = os.path.join(workdir, f"reg-{tag}")
    with open(ship_cfg, "w") as f:
        f.write(f'inputs:\n  - paths: ["{path}"]\n    start_position: beginning\n'
                f'{processors}'
                f'output:\n  hosts: ["127.0.0.1:{lj}"]\n  compression: {compression}\n'
                f'queue: {{max_events: 8192}}\n'
                f'registry: {{path: "{reg}"}}\nmetrics: {{listen: "127.0.0.1:{sm}"}}\n')
    try:
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", lj)) == 0, 30, "receiver")
        t0 = time.monotonic()
        ship = subprocess.Popen([os.path.join(BUILD, "sluice-shipper"), "-c", ship_cfg], stderr=log)
        try:
            wait(lambda: socket.socket().connect_ex(("127.0.0.1", sm)) == 0, 30, "shipper")
            wait(lambda: metric(sm, "sluice_shipper_events_acked_total") >= lines, 600,
                 "all lines ACKed")
            dt = time.monotonic() - t0
            scpu, srss = proc_stat(ship.pid)
            acpu, arss = proc_stat(agg.pid)
            wire = metric(sm, "sluice_shipper_wire_bytes_total")
        finally:
            ship.send_signal(signal.SIGTERM)
            ship.wait(30)
    finally:
        agg.send_signal(signal.SIGTERM)
        agg.wait(30)
        log.close()
    return dict(seconds=dt, ship_cpu=scpu, ship_rss=srss, agg_cpu=acpu, agg_rss=arss, wire=wire)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", "1000000")))
    ap.add_argument("--no-peers", action="store_true",
                    help="skip the peers (rsyslog, syslog-ng, Filebeat, go-grok)")
    ap.add_argument("--no-filebeat", action="store_true",
                    help="skip the Filebeat 7.17.29 rows (filebeat_peer.py)")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="skip the aggregator pipeline benchmark (pipeline_bench.py)")
    ap.add_argument("--processors-only", action="store_true",
                    help="only the shipper -> ljsink rows without and with a typical "
                         "processor chain")
    args = ap.parse_args()
    path = corpus(args.lines)
    size = os.path.getsize(path)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print(f"corpus: {args.lines} lines, {size / 1e6:.1f} MB ({size / args.lines:.0f} bytes/line)\n")
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    results = {}
    print(f"{'pipeline':28} {'lines/s':>12} {'MB/s':>8} {'shipper cpu s/M':>16} "
          f"{'shipper RSS MB':>15} {'aggr cpu s/M':>13} {'aggr RSS MB':>12} {'wire MB':>8}")
    # The last aggregator row is how the throughput issue measured the aggregator:
    # behind the shipper, grok + date + mutate on one worker.
    from pipeline_bench import FILTERS
    runs = [("sink", c, "", "") for c in ("zstd", "zlib", "none")]
    runs += [("aggregator", "zstd", "", ""), ("aggregator", "zstd", "", FILTERS["pipeline"])]
    runs.append(("sink", "zstd", TYPICAL_PROCESSORS, ""))
    if args.processors_only:
        runs = [("sink", "zstd", "", ""), ("sink", "zstd", TYPICAL_PROCESSORS, "")]
    for target, comp, procs, filters in runs:
        r = run_sluice(path, args.lines, comp, work, target, procs, filters)
        results[(target, comp) + (("processors",) if procs else ()) +
                (("filters",) if filters else ())] = r
        m = args.lines / 1e6
        name = (f"shipper {comp}{' +processors' if procs else ''} -> "
                f"{'ljsink' if target == 'sink' else 'aggregator'}")
        if filters:
            name = "  same, grok+date+mutate w1"
        recv = "" if target == "sink" else f"{r['agg_cpu'] / m:13.2f} {r['agg_rss'] / 1e6:12.1f}"
        print(f"{name:28} {args.lines / r['seconds']:12,.0f} {size / r['seconds'] / 1e6:8.1f} "
              f"{r['ship_cpu'] / m:16.2f} {r['ship_rss'] / 1e6:15.1f} "
              f"{recv or ' ' * 26} {r['wire'] / 1e6:8.1f}")
    if ("sink", "zstd", "processors") in results:
        base = results[("sink", "zstd")]
        with_p = results[("sink", "zstd", "processors")]
        print(f"ratio shipper zstd -> ljsink, typical processors / none: "
              f"{with_p['ship_cpu'] / base['ship_cpu']:.2f}x shipper cpu, "
              f"{base['seconds'] / with_p['seconds']:.2f}x lines/s")
    if args.processors_only:
        shutil.rmtree(work, ignore_errors=True)
        return 0
    best_peer = None
    keep = False
    notes = []
    fb_ratios = []
    if not (args.no_peers or args.no_filebeat):
        import filebeat_peer  # Filebeat -> ljsink / aggregator, same corpus, same receivers
        try:
            fb = filebeat_peer.rows(path, args.lines, work, results)
        except Exception as e:  # noqa: BLE001 - figures, never a failure
            print(f"{'filebeat':28} failed: {e}")
            fb = None
        if fb:
            keep = keep or bool(fb.get("failed"))
            notes += filebeat_peer.describe(fb, args.lines)
            fb_ratios = filebeat_peer.ratios(fb, results, args.lines)
    if not args.no_peers:
        for name in ("rsyslog", "syslog-ng"):
            r = run_peer(name, path, args.lines, work)
            if r is None:
                print(f"{name + ' -> tcp sink':28} (unavailable or failed; see {work}/{name})")
                keep = True
                continue
            m = args.lines / 1e6
            print(f"{name + ' -> tcp sink':28} {args.lines / r['seconds']:12,.0f} "
                  f"{size / r['seconds'] / 1e6:8.1f} {r['cpu'] / m:16.2f} {r['rss'] / 1e6:15.1f}")
            notes.append(describe(r["version"], r, args.lines))
            rate = args.lines / r["seconds"]
            if best_peer is None or rate > best_peer[1]:
                best_peer = (name, rate)
    for n in notes:
        print("  " + n)
    for n in fb_ratios:
        print(n)
    if best_peer:
        for key in (("sink", "zstd"), ("aggregator", "zstd")):
            rate = args.lines / results[key]["seconds"]
            print(f"ratio shipper zstd -> {key[0]} / best peer ({best_peer[0]}): "
                  f"{rate / best_peer[1]:.2f}x lines/s")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_pipeline:
        import pipeline_bench  # issue #5: grok + date + mutate, workers 1 and 2, go-grok peer
        pipeline_bench.main(["--lines", str(args.lines)]
                            + (["--no-peer"] if args.no_peers else []))


if __name__ == "__main__":
    sys.exit(main())

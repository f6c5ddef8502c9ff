#!/usr/bin/env python3
"""make bench: figures, never a verdict.

Ships a generated corpus of Apache combined lines (~200 bytes each) from the
start of the file through sluice-shipper into sluice-aggregator (file output to
/dev/null), once per compression, and reports lines/s, MB/s, CPU seconds per
million lines and peak RSS of each daemon. Peers (rsyslog imfile, syslog-ng
file source) move the same file to a local TCP sink in the same run, when
they are installed, so the figures come with ratios.
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
import threading
import time
import urllib.request

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


def run_sluice(path, lines, compression, workdir):
    lj, am, sm = free_port(), free_port(), free_port()
    agg_cfg = os.path.join(workdir, f"agg-{compression}.yml")
    ship_cfg = os.path.join(workdir, f"ship-{compression}.yml")
    with open(agg_cfg, "w") as f:
        f.write(f'input: {{listen: "127.0.0.1:{lj}"}}\noutputs:\n  - file: {{path: /dev/null}}\n'
                f'metrics: {{listen: "127.0.0.1:{am}"}}\n')
    reg = os.path.join(workdir, f"reg-{compression}")
    with open(ship_cfg, "w") as f:
        f.write(f'inputs:\n  - paths: ["{path}"]\n    start_position: beginning\n'
                f'output:\n  hosts: ["127.0.0.1:{lj}"]\n  compression: {compression}\n'
                f'queue: {{max_events: 8192}}\n'
                f'registry: {{path: "{reg}"}}\nmetrics: {{listen: "127.0.0.1:{sm}"}}\n')
    log = open(os.path.join(workdir, f"{compression}.log"), "wb")
    agg = subprocess.Popen([os.path.join(BUILD, "sluice-aggregator"), "-c", agg_cfg], stderr=log)
    try:
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", lj)) == 0, 30, "aggregator")
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


class Sink:
    """A TCP server counting newline-terminated records, for the peers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.read, args=(c,), daemon=True).start()

    def read(self, c):
        while True:
            b = c.recv(1 << 20)
            if not b:
                return
            with self.lock:
                self.lines += b.count(b"\n")


def run_peer(name, path, lines, workdir):
    sink = Sink()
    if name == "rsyslog":
        exe = shutil.which("rsyslogd")
        conf = os.path.join(workdir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(f'global(workDirectory="{workdir}")\n'
                    'module(load="imfile" mode="inotify")\n'
                    f'input(type="imfile" File="{path}" Tag="bench" freshStartTail="off")\n'
                    f'action(type="omfwd" target="127.0.0.1" port="{sink.port}" protocol="tcp" '
                    'template="RSYSLOG_FileFormat")\n')
        argv = [exe, "-n", "-f", conf, "-i", os.path.join(workdir, "rsyslog.pid")]
    else:
        exe = shutil.which("syslog-ng")
        conf = os.path.join(workdir, "syslog-ng.conf")
        with open(conf, "w") as f:
            f.write('@version: 3.38\n@include "scl.conf"\n'
                    f'source s {{ file("{path}" flags(no-parse) follow-freq(1) log-fetch-limit(1000)); }};\n'
                    f'destination d {{ network("127.0.0.1" port({sink.port}) transport("tcp")); }};\n'
                    'log { source(s); destination(d); };\n')
        argv = [exe, "-F", "-f", conf, "-R", os.path.join(workdir, "syslog-ng.persist"),
                "-c", os.path.join(workdir, "syslog-ng.ctl"), "-p", os.path.join(workdir, "syslog-ng.pid")]
    if not exe:
        return None
    log = open(os.path.join(workdir, f"{name}.log"), "wb")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        wait(lambda: sink.lines >= lines or p.poll() is not None, 900, f"{name} to deliver")
        if p.poll() is not None:
            return None
        dt = time.monotonic() - t0
        cpu, rss = proc_stat(p.pid)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
    return dict(seconds=dt, cpu=cpu, rss=rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", "1000000")))
    ap.add_argument("--no-peers", action="store_true")
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
    for comp in ("zstd", "zlib", "none"):
        r = run_sluice(path, args.lines, comp, work)
        results[comp] = r
        m = args.lines / 1e6
        print(f"{'sluice ' + comp:28} {args.lines / r['seconds']:12,.0f} {size / r['seconds'] / 1e6:8.1f} "
              f"{r['ship_cpu'] / m:16.2f} {r['ship_rss'] / 1e6:15.1f} {r['agg_cpu'] / m:13.2f} "
              f"{r['agg_rss'] / 1e6:12.1f} {r['wire'] / 1e6:8.1f}")
    best_peer = None
    if not args.no_peers:
        for name in ("rsyslog", "syslog-ng"):
            r = run_peer(name, path, args.lines, work)
            if r is None:
                print(f"{name + ' -> tcp sink':28} (not installed or failed; see {work})")
                continue
            m = args.lines / 1e6
            print(f"{name + ' -> tcp sink':28} {args.lines / r['seconds']:12,.0f} "
                  f"{size / r['seconds'] / 1e6:8.1f} {r['cpu'] / m:16.2f} {r['rss'] / 1e6:15.1f}")
            rate = args.lines / r["seconds"]
            if best_peer is None or rate > best_peer[1]:
                best_peer = (name, rate)
    if best_peer:
        rate = args.lines / results["zstd"]["seconds"]
        print(f"\nratio sluice zstd / best peer ({best_peer[0]}): {rate / best_peer[1]:.2f}x lines/s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

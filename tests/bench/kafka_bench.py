#!/usr/bin/env python3
"""Kafka output benchmark: figures, never a verdict.

Ships the bench corpus (Apache combined lines, ~200 bytes) from the start of
the file through sluice-shipper (zstd) into sluice-aggregator whose only output
is `kafka` (zstd, acks=all, idempotent), and times it until the shipper has
every line ACKed - that is, until Kafka acknowledged every message. In the same
run, `kcat -P` produces the same lines from the same file to another topic with
the same producer settings, as the reference: librdkafka with no pipeline in
front of it. Reports events/s, CPU seconds per million events, peak RSS and
the ratio, and checks the topic's message count.

The broker is tests/servers/kafka in a private run dir (started and stopped
here), unless BENCH_KAFKA=host:port names one already running.

    python3 tests/bench/kafka_bench.py [--lines N]
"""

import argparse
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BUILD, ROOT, corpus, free_port, metric, proc_stat, wait  # noqa: E402

KAFKA = os.path.join(ROOT, "tests", "servers", "kafka")
PRODUCER = ["-X", "compression.codec=zstd", "-X", "acks=all", "-X", "enable.idempotence=true",
            "-X", "linger.ms=5"]


def topic_count(broker, topic):
    """Messages in topic (one partition): its high watermark, read with kcat."""
    p = subprocess.run(["kcat", "-C", "-b", broker, "-t", topic, "-o", "-1", "-e", "-q",
                        "-f", "%o\n"], capture_output=True, text=True, timeout=120)
    offs = [int(x) for x in p.stdout.split()]
    return offs[-1] + 1 if offs else 0


def run_sluice(broker, path, lines, work):
    topic = f"bench-sluice-{uuid.uuid4().hex[:8]}"
    lj, am, sm = free_port(), free_port(), free_port()
    agg_cfg = os.path.join(work, "agg.yml")
    ship_cfg = os.path.join(work, "ship.yml")
    with open(agg_cfg, "w") as f:
        f.write(f'input: {{listen: "127.0.0.1:{lj}"}}\n'
                f'outputs:\n  - kafka: {{brokers: ["{broker}"], topic: "{topic}"}}\n'
                f'metrics: {{listen: "127.0.0.1:{am}"}}\n')
    with open(ship_cfg, "w") as f:
        f.write(f'inputs:\n  - paths: ["{path}"]\n    start_position: beginning\n'
                f'output:\n  hosts: ["127.0.0.1:{lj}"]\n  compression: zstd\n'
                f'queue: {{max_events: 8192}}\n'
                f'registry: {{path: "{work}/reg"}}\nmetrics: {{listen: "127.0.0.1:{sm}"}}\n')
    log = open(os.path.join(work, "sluice.log"), "wb")
    agg = subprocess.Popen([os.path.join(BUILD, "sluice-aggregator"), "-c", agg_cfg], stderr=log)
    try:
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", lj)) == 0, 30, "aggregator")
        t0 = time.monotonic()
        ship = subprocess.Popen([os.path.join(BUILD, "sluice-shipper"), "-c", ship_cfg],
                                stderr=log)
        try:
            wait(lambda: socket.socket().connect_ex(("127.0.0.1", sm)) == 0, 30, "shipper")
            wait(lambda: metric(sm, "sluice_shipper_events_acked_total") >= lines, 1800,
                 "all lines ACKed")
            dt = time.monotonic() - t0
            scpu, srss = proc_stat(ship.pid)
            acpu, arss = proc_stat(agg.pid)
        finally:
            ship.send_signal(signal.SIGTERM)
            ship.wait(30)
    finally:
        agg.send_signal(signal.SIGTERM)
        agg.wait(30)
        log.close()
    return dict(seconds=dt, cpu=acpu, rss=arss, ship_cpu=scpu, ship_rss=srss,
                count=topic_count(broker, topic))


def run_kcat(broker, path):
    topic = f"bench-kcat-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    p = subprocess.Popen(["kcat", "-P", "-b", broker, "-t", topic, "-l", *PRODUCER, path],
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P failed: {p.stderr.read().decode()[-2000:]}")
    return dict(seconds=dt, cpu=ru.ru_utime + ru.ru_stime, rss=ru.ru_maxrss * 1024,
                count=topic_count(broker, topic))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", "500000")))
    args = ap.parse_args()
    if not shutil.which("kcat"):
        print("kcat is not installed (apt-get install -y kcat)", file=sys.stderr)
        return 1
    path = corpus(args.lines)
    size = os.path.getsize(path)
    work = tempfile.mkdtemp(prefix="sluice-kafka-bench-")
    env = dict(os.environ, KAFKA_RUN_DIR=os.path.join(work, "kafka"))
    broker = os.environ.get("BENCH_KAFKA")
    started = False
    if not broker:
        p = subprocess.run([KAFKA, "start"], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return 1
        broker = p.stdout.strip().splitlines()[-1]
        started = True
    try:
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.platform()}")
        print(f"corpus: {args.lines} lines, {size / 1e6:.1f} MB; broker {broker} "
              f"(one node, KRaft, same machine)\n")
        # Warm-up: topic creation and the producer id make the first second slow.
        subprocess.run(["kcat", "-P", "-b", broker, "-t", "bench-warmup", *PRODUCER],
                       input=b"warm\n", capture_output=True, timeout=120)
        s = run_sluice(broker, path, args.lines, work)
        k = run_kcat(broker, path)
        m = args.lines / 1e6
        print(f"{'pipeline':40} {'events/s':>10} {'cpu s/M':>8} {'peak RSS MB':>12} "
              f"{'in topic':>9}")
        print(f"{'sluice shipper->aggregator->kafka':40} {args.lines / s['seconds']:10,.0f} "
              f"{s['cpu'] / m:8.2f} {s['rss'] / 1e6:12.1f} {s['count']:9}   (aggregator)")
        print(f"{'':40} {'':10} {s['ship_cpu'] / m:8.2f} {s['ship_rss'] / 1e6:12.1f} "
              f"{'':9}   (shipper)")
        print(f"{'kcat -P (same lines, same producer)':40} {args.lines / k['seconds']:10,.0f} "
              f"{k['cpu'] / m:8.2f} {k['rss'] / 1e6:12.1f} {k['count']:9}")
        print(f"\nratio sluice / kcat: {k['seconds'] / s['seconds']:.2f}x events/s, "
              f"{s['cpu'] / k['cpu']:.2f}x aggregator CPU per event")
        print("note: sluice's messages are the event JSON (~2.5x the raw line); kcat sends the "
              "raw line.")
        if s["count"] != args.lines or k["count"] != args.lines:
            print(f"WARNING: expected {args.lines} messages per topic", file=sys.stderr)
    finally:
        if started:
            subprocess.run([KAFKA, "stop"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

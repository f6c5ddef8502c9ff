#!/usr/bin/env python3
"""The aggregator's kafka input against `kcat -C` on the same topic.

    python3 tests/bench/kafka_input_bench.py --broker HOST:PORT [--messages N] [--codec json]

Produces N JSON messages (~150 bytes) to a new topic with kcat (4 partitions if the
broker's num.partitions says so), then times (1) `kcat -C -e` reading them all to
/dev/null and (2) sluice-aggregator (build/, or $SLUICE_BUILD) consuming them in a new
group into a file output, until sluice_aggregator_kafka_messages_total{result=
"delivered"} reaches N. Prints wall time and CPU (user+sys) of each. Figures only."""

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build"))


def delivered(port):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0
    for line in body.decode().splitlines():
        if line.startswith('sluice_aggregator_kafka_messages_total{result="delivered"}'):
            return float(line.split()[-1])
    return 0


def proc_cpu(pid):
    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--codec", default="json", choices=["json", "plain"])
    a = ap.parse_args()
    topic = "bench-" + uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory() as d:
        data = "".join("k%d:%s\n" % (i, json.dumps({
            "n": i, "level": "info",
            "message": "GET /index.html HTTP/1.1 200 %d host=web-%d user=alice" % (i, i % 50)}))
            for i in range(a.messages))
        subprocess.run(["kcat", "-P", "-b", a.broker, "-t", topic, "-K:"], input=data.encode(),
                       check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run(["kcat", "-C", "-b", a.broker, "-t", topic, "-o", "beginning", "-e",
                        "-q"], stdout=subprocess.DEVNULL, check=True)
        t1 = time.monotonic()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        kcat_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"kcat -C:    {t1 - t0:.2f} s wall, {kcat_cpu:.2f} s cpu "
              f"({kcat_cpu / a.messages * 1e6:.2f} us/message)")
        port = 19000 + os.getpid() % 1000
        cfg = os.path.join(d, "agg.yml")
        with open(cfg, "w") as f:
            f.write(f"""inputs:
  - kafka:
      bootstrap_servers: "{a.broker}"
      topics: ["{topic}"]
      group_id: "bench-{uuid.uuid4().hex[:8]}"
      codec: {a.codec}
      auto_offset_reset: earliest
outputs:
  - file: {{path: "{d}/out.ndjson"}}
metrics:
  listen: 127.0.0.1:{port}
""")
        p = subprocess.Popen([os.path.join(BUILD, "sluice-aggregator"), "-c", cfg],
                             stderr=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            first = None
            while True:
                n = delivered(port)
                if n and first is None:
                    first = time.monotonic()
                if n >= a.messages or time.monotonic() - t0 > 300:
                    break
                time.sleep(0.01)
            t1 = time.monotonic()
            cpu = proc_cpu(p.pid)
            print(f"aggregator: {t1 - first:.2f} s wall from the first delivery "
                  f"({t1 - t0:.2f} s with start and group join), {cpu:.2f} s cpu "
                  f"({cpu / a.messages * 1e6:.2f} us/event, start included)")
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()

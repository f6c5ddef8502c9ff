#!/usr/bin/env python3
"""Aggregator pipeline benchmark (issue #5): figures, never a verdict.

Lumberjack in -> grok %{COMBINEDAPACHELOG} + date + mutate -> file output to /dev/null,
with pipeline.workers 1 and 2, on the Apache combined corpus of bench.py (same generator,
same cache under .cache/bench). The load comes from tests/bench/ljblast.c, which encodes
Filebeat-shaped events into zstd windows once, before the clock, and then sends them as
fast as the aggregator ACKs them, so the client costs little CPU next to the aggregator.

Rows (each a fresh aggregator process):
  baseline   no filters (decode + JSON parse + serialise + output)
  grok       the grok filter only: its in-situ cost is grok CPU - baseline CPU
  pipeline   grok + date + mutate, workers 1, then workers 2

For each: events/s (wall, first byte sent to last ACK), aggregator CPU seconds per million
events (utime+stime from /proc, startup excluded), peak RSS (VmHWM), and VmRSS sampled
every 100 ms; min/max over the last 80% of the run show whether memory is flat.

Then the grok engine alone: tests/bench/grok_bench.c (bare onig_search vs the filter, CPU
time, its own 324-byte line), and the peer: Elastic's go-grok (tests/bench/gogrok, its own
Go module, built with `go build`) parsing the same corpus with its COMBINEDAPACHELOG on
one goroutine, and grok_bench's line too. Ratios are printed at the end.

    python3 tests/bench/pipeline_bench.py [--lines N] [--events N] [--soak N] [--no-peer]
    python3 tests/bench/pipeline_bench.py --against OLD_AGGREGATOR [--rounds N] [--events N]

--against: only the baseline, pipeline w1 and ecs w1 rows, each run alternately with
OLD_AGGREGATOR (a copy of an earlier build/sluice-aggregator) and this build's, N rounds
(default 3; old-new, then new-old, ...), so that both see the same machine; prints every
run, the median of each and new/old. This VM's speed drifts within the hour: only ratios
of one such run compare. --old-without-ecs-option: for an OLD_AGGREGATOR from before grok's
`ecs_compatibility` option (it named fields the legacy way): that option is left out of the
old binary's config and the ECS row is skipped (e.g. the issue's first binary, d2b9bef).

Environment: BENCH_LINES (corpus lines, default 1,000,000, shared with bench.py),
BENCH_PIPELINE_EVENTS (events per row, default 1,000,000), BENCH_SOAK_EVENTS (a longer
pipeline w2 row for memory, default 0: none), SLUICE_BUILD, SLUICE_CACHE.
"""

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BUILD, ROOT, corpus, free_port, metric, proc_stat, wait  # noqa: E402

BENCH_BIN = os.path.join(BUILD, "bench")
OBJ = os.path.join(BUILD, "obj")
PKGS = ["yaml-0.1", "libcurl", "rdkafka", "libzstd", "oniguruma", "zlib", "openssl"]

# Logstash-style pipeline of issue #5. overwrite: [agent] - the Beats event already has an
# "agent" object, which grok would otherwise leave alone (a capture never replaces an object).
FILTERS = {
    "none": "[]",
    "grok": """
    - grok: {patterns: ['%{COMBINEDAPACHELOG}'], overwrite: [agent], ecs_compatibility: disabled}""",
    "pipeline": """
    - grok: {patterns: ['%{COMBINEDAPACHELOG}'], overwrite: [agent], ecs_compatibility: disabled}
    - date: {match: [timestamp, "dd/MMM/yyyy:HH:mm:ss Z"]}
    - mutate: {convert: {response: integer, bytes: integer}, remove_fields: [timestamp]}""",
    # The ECS recipe of docs/filters.md (the default naming): nested fields, numbers by
    # the patterns' own :int, Beats' agent object left alone.
    "ecs": """
    - grok: {patterns: ['%{COMBINEDAPACHELOG}']}
    - date: {match: [timestamp, "dd/MMM/yyyy:HH:mm:ss Z"]}
    - mutate: {remove_fields: [timestamp]}""",
}

# tests/bench/grok_bench.c's line, for go-grok on exactly the same input.
GROK_BENCH_LINE = (
    '83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET '
    '/presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 '
    '"http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 '
    '(Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) '
    'Chrome/32.0.1700.77 Safari/537.36"')


def kv(line):
    return {k: v for k, v in (p.split("=", 1) for p in line.split() if "=" in p)}


def stale(exe, *deps):
    if not os.path.exists(exe):
        return True
    t = os.path.getmtime(exe)
    return any(os.path.exists(d) and os.path.getmtime(d) > t for d in deps)


def pkg_libs(pkgs):
    r = subprocess.run(["pkg-config", "--libs"] + pkgs, stdout=subprocess.PIPE, text=True)
    return r.stdout.split() if r.returncode == 0 else []


def build_ljblast():
    exe = os.path.join(BENCH_BIN, "ljblast")
    src = os.path.join(ROOT, "tests", "bench", "ljblast.c")
    lib = os.path.join(OBJ, "libsluice.a")
    if stale(exe, src, lib):
        os.makedirs(BENCH_BIN, exist_ok=True)
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-pthread",
                        "-I" + os.path.join(ROOT, "lib", "include"), "-o", exe, src, lib]
                       + pkg_libs(["libzstd", "zlib"]) + ["-lm"], check=True)
    return exe


def build_grok_bench():
    """grok_bench.c is built like tests/plugin/filter_grok_test (its header says so), -O2."""
    exe = os.path.join(BENCH_BIN, "grok_bench")
    src = os.path.join(ROOT, "tests", "bench", "grok_bench.c")
    objs = [os.path.join(OBJ, "plugins", "filter_grok", o) for o in ("filter_grok.o", "grok.o")]
    objs += [os.path.join(OBJ, "gen", "grok_patterns.o"), os.path.join(OBJ, "libsluice-agg.a"),
             os.path.join(OBJ, "libsluice.a")]
    if stale(exe, src, *objs):
        os.makedirs(BENCH_BIN, exist_ok=True)
        cflags = subprocess.run(["pkg-config", "--cflags"] + PKGS, stdout=subprocess.PIPE,
                                text=True).stdout.split()
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-pthread",
                        "-I" + os.path.join(ROOT, "lib", "include"),
                        "-I" + os.path.join(ROOT, "aggregator"),
                        "-I" + os.path.join(ROOT, "aggregator", "include"),
                        "-I" + os.path.join(ROOT, "plugins", "filter_grok")] + cflags
                       + ["-o", exe, src] + objs + pkg_libs(PKGS) + ["-lm"], check=True)
    return exe


def build_gogrok():
    """go build of tests/bench/gogrok (module cache fills from the Go module proxy once)."""
    exe = os.path.join(BENCH_BIN, "gogrok")
    src = os.path.join(ROOT, "tests", "bench", "gogrok")
    deps = [os.path.join(src, f) for f in ("main.go", "go.mod", "go.sum")]
    if not stale(exe, *deps):
        return exe, None
    if not shutil.which("go"):
        return None, "no go toolchain on PATH"
    os.makedirs(BENCH_BIN, exist_ok=True)
    env = dict(os.environ, GOFLAGS="-mod=mod")
    r = subprocess.run(["go", "build", "-o", exe, "."], cwd=src, env=env, timeout=600,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        return None, "go build failed: " + r.stdout.strip()[-400:]
    return exe, None


def rss_now(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Sampler(threading.Thread):
    """VmRSS of pid every `every` seconds until stop()."""

    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self._halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self._halt.is_set():
            r = rss_now(self.pid)
            if r is not None:
                self.samples.append((time.monotonic() - t0, r))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join()


class MetricsProbe(threading.Thread):
    """GET /metrics every `every` seconds while the row runs: how long the I/O thread,
    which also serves the connections, takes to answer under load (ms)."""

    def __init__(self, port, every=0.1):
        super().__init__(daemon=True)
        self.port, self.every, self.ms = port, every, []
        self._halt = threading.Event()

    def run(self):
        import urllib.request
        while not self._halt.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                            timeout=5) as r:
                    r.read()
                self.ms.append((time.monotonic() - t0) * 1e3)
            except OSError:
                pass
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join()

    def summary(self):
        if not self.ms:
            return "-"
        v = sorted(self.ms)
        return f"{v[len(v) // 2]:.1f}/{v[-1]:.0f}"


def filter_metrics(port):
    """{(filter, result): count} from the aggregator's /metrics."""
    import urllib.request
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            m = re.match(r'sluice_aggregator_filter_events_total\{(.*)\} (\S+)', line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                out[(labels.get("filter", "?"), labels.get("result", "?"))] = float(m.group(2))
    return out


def start_aggregator(workdir, tag, filters, workers, output_path="/dev/null", extra="", tail="",
                     exe=None):
    """The aggregator (exe, default the build's) on OS-picked ports, waited for; `extra`
    goes inside `pipeline:` (two-space indented lines), `tail` after the whole config
    (top-level sections)."""
    lj, am = free_port(), free_port()
    cfg = os.path.join(workdir, f"agg-{tag}.yml")
    with open(cfg, "w") as f:
        f.write(f'input: {{listen: "127.0.0.1:{lj}"}}\n'
                f'pipeline:\n  workers: {workers}\n{extra}  filters: {filters}\n'
                f'outputs:\n  - file: {{path: "{output_path}"}}\n'
                f'metrics: {{listen: "127.0.0.1:{am}"}}\n' + tail)
    log = open(os.path.join(workdir, f"agg-{tag}.log"), "wb")
    p = subprocess.Popen([exe or os.path.join(BUILD, "sluice-aggregator"), "-c", cfg], stderr=log)
    try:
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", lj)) == 0, 30, "aggregator")
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", am)) == 0, 30, "metrics")
    except Exception:
        p.kill()
        p.wait()
        log.close()
        raise
    return p, lj, am, log


def stop(p, log):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.close()


def blast(exe, port, path, events, workdir, tag, distinct, window, pipelined, conns):
    errf = open(os.path.join(workdir, f"ljblast-{tag}.err"), "w")
    p = subprocess.Popen([exe, "-p", str(port), "-f", path, "-n", str(events), "-d", str(distinct),
                          "-w", str(window), "-P", str(pipelined), "-c", str(conns)],
                         stdout=subprocess.PIPE, stderr=errf, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    errf.close()
    r = kv(out)
    if p.returncode != 0 or r.get("ok") != "1":
        raise RuntimeError(f"ljblast failed ({p.returncode}): {out.strip()} "
                           f"(see {workdir}/ljblast-{tag}.err)")
    r["client_cpu"] = ru.ru_utime + ru.ru_stime
    return r


LEGACY_OPTION = ", ecs_compatibility: disabled"


def run_row(ljblast, path, workdir, tag, filters, workers, events, opts, exe=None,
            pre_ecs=False):
    text = FILTERS[filters].replace(LEGACY_OPTION, "") if pre_ecs else FILTERS[filters]
    agg, lj, am, log = start_aggregator(workdir, tag, text, workers, exe=exe)
    try:
        cpu0, _ = proc_stat(agg.pid)
        sampler = Sampler(agg.pid)
        sampler.start()
        probe = MetricsProbe(am)
        probe.start()
        try:
            r = blast(ljblast, lj, path, events, workdir, tag, opts.distinct, opts.window,
                      opts.pipelined, opts.connections)
        finally:
            sampler.stop()
            probe.stop()
        cpu1, hwm = proc_stat(agg.pid)
        fm = filter_metrics(am)
        acked = metric(am, "sluice_aggregator_events_acked_total")
    finally:
        stop(agg, log)
    n = int(r["events"])
    secs = float(r["seconds"])
    s = sampler.samples
    hwm = max([hwm] + [v for _, v in s])  # VmHWM can lag a sampled VmRSS a little
    steady = [v for t, v in s if t >= 0.2 * secs] or [v for _, v in s]
    # Flatness: the highest RSS of the last 40% of the run minus that of 20%..60%.
    early = [v for t, v in s if 0.2 * secs <= t < 0.6 * secs]
    late = [v for t, v in s if t >= 0.6 * secs]
    drift = (max(late) - max(early)) if early and late else 0
    errors = sum(v for (_, res), v in fm.items() if res == "error")
    deciles = []
    for k in range(1, 11):
        part = [v for t, v in s if (k - 1) * secs / 10 <= t < k * secs / 10]
        deciles.append(max(part) if part else 0)
    return dict(tag=tag, workers=workers, filters=filters, events=n, seconds=secs, deciles=deciles,
                eps=n / secs, cpu_per_m=(cpu1 - cpu0) / n * 1e6, hwm=hwm,
                rss_min=min(steady) if steady else 0, rss_max=max(steady) if steady else 0,
                rss_n=len(steady), drift=drift, client_cpu_per_m=r["client_cpu"] / n * 1e6,
                acked=acked, filter_errors=errors, metrics_ms=probe.summary(),
                wire_per_event=int(r["wire_bytes"]) / n,
                json_per_event=float(r["json_bytes_per_event"]))


def check_output(ljblast, path, workdir):
    """A small run into a real file: the pipeline does parse (no tags, fields as expected)."""
    out = os.path.join(workdir, "check.ndjson")
    agg, lj, am, log = start_aggregator(workdir, "check", FILTERS["pipeline"], 1, out)
    try:
        blast(ljblast, lj, path, 2048, workdir, "check", 2048, 2048, 1, 1)
    finally:
        stop(agg, log)
    problems = []
    with open(out) as f, open(path) as c:
        evs = [json.loads(line) for line in f]
        lines = [c.readline().rstrip("\n") for _ in range(len(evs))]
    for ev, line in zip(evs, lines):
        m = re.match(r'(\S+) \S+ \S+ \[(\d+)/(\w+)/(\d+):(\d+:\d+:\d+) \+0000\] "(\w+) (\S+) '
                     r'HTTP/([\d.]+)" (\d+) (\d+) "(.*)" "(.*)"$', line)
        months = {"Nov": "11"}
        want = {"clientip": m.group(1), "verb": m.group(6), "request": m.group(7),
                "httpversion": m.group(8), "response": int(m.group(9)),
                "bytes": int(m.group(10)), "referrer": f'"{m.group(11)}"',
                "agent": f'"{m.group(12)}"',
                "@timestamp": f"{m.group(4)}-{months.get(m.group(3), '?')}-{m.group(2)}T"
                              f"{m.group(5)}.000Z"}
        for k, v in want.items():
            if ev.get(k) != v:
                problems.append(f"{k}: {ev.get(k)!r} != {v!r}")
        if "timestamp" in ev or "tags" in ev:
            problems.append(f"unexpected timestamp/tags: {ev.get('tags')}")
        if problems:
            break
    if len(evs) != 2048:
        problems.append(f"{len(evs)} events written, 2048 sent")
    return problems


def build_stage_bench():
    """Like grok_bench: the date, mutate and file plugins, the core and libsluice, -O2."""
    exe = os.path.join(BENCH_BIN, "stage_bench")
    src = os.path.join(ROOT, "tests", "bench", "stage_bench.c")
    objs = [os.path.join(OBJ, "plugins", d, d + ".o")
            for d in ("filter_date", "filter_mutate", "out_file")]
    objs += [os.path.join(OBJ, "libsluice-agg.a"), os.path.join(OBJ, "libsluice.a")]
    if stale(exe, src, *objs):
        os.makedirs(BENCH_BIN, exist_ok=True)
        cflags = subprocess.run(["pkg-config", "--cflags"] + PKGS, stdout=subprocess.PIPE,
                                text=True).stdout.split()
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-pthread",
                        "-I" + os.path.join(ROOT, "lib", "include"),
                        "-I" + os.path.join(ROOT, "aggregator"),
                        "-I" + os.path.join(ROOT, "aggregator", "include")] + cflags
                       + ["-o", exe, src] + objs + pkg_libs(PKGS) + ["-lm"], check=True)
    return exe


def run_stage_bench(n):
    r = subprocess.run([build_stage_bench(), str(n)], stdout=subprocess.PIPE, text=True,
                       check=True, timeout=600)
    return r.stdout


def run_grok_bench(n):
    exe = build_grok_bench()
    r = subprocess.run([exe, str(n)], stdout=subprocess.PIPE, text=True, check=True, timeout=600)
    vals = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s+(.*?)\s{2,}(\d+) ns/line", line)
        if m:
            vals[m.group(1)] = float(m.group(2))
    return r.stdout, vals


def run_gogrok(exe, path, mode, seconds, pattern=None, lines=0):
    argv = [exe, "-f", path, "-mode", mode, "-seconds", str(seconds)]
    if lines:
        argv += ["-n", str(lines)]
    if pattern:
        argv += ["-pattern", pattern]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=seconds + 300)
    if r.returncode != 0:
        raise RuntimeError(r.stdout.strip())
    return {k: (float(v) if re.match(r"^[\d.]+$", v) else v) for k, v in kv(r.stdout).items()}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run(lines, events, opts):
    path = corpus(lines)
    size = os.path.getsize(path)
    print(f"\n== Aggregator pipeline (issue #5) ==")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"load average at start {loadavg()}")
    print(f"corpus: {lines} lines ({size / lines:.0f} bytes/line), the first {opts.distinct} "
          f"encoded once into windows of {opts.window} events (zstd 3); {events} events per row, "
          f"{opts.connections} connection(s), {opts.pipelined} windows in flight each")
    ljblast = build_ljblast()
    work = tempfile.mkdtemp(prefix="sluice-pbench-")
    keep = False
    problems = check_output(ljblast, path, work)
    print("check: " + ("events parsed as expected (2048 events into a file: grok fields, "
                       "@timestamp from the line, response/bytes integers, no tags)"
                       if not problems else "PROBLEMS: " + "; ".join(problems[:5])))
    rows = []
    plan = [("baseline w1", "none", 1), ("grok w1", "grok", 1),
            ("pipeline w1", "pipeline", 1), ("pipeline w2", "pipeline", 2),
            ("ecs w1", "ecs", 1)]
    print(f"\n{'row':14} {'events/s':>10} {'/worker':>9} {'agg CPU s/M':>12} {'peak RSS':>9} "
          f"{'RSS steady min-max':>19} {'drift':>7} {'client CPU s/M':>15} {'filter err':>10} "
          f"{'/metrics ms':>12}")
    for name, filters, workers in plan:
        try:
            r = run_row(ljblast, path, work, name.replace(" ", "-"), filters, workers, events,
                        opts)
        except Exception as e:  # noqa: BLE001 - a row that fails says so, the rest still run
            print(f"{name:14} failed: {e}")
            keep = True
            continue
        rows.append((name, r))
        print(f"{name:14} {r['eps']:10,.0f} {r['eps'] / workers:9,.0f} {r['cpu_per_m']:12.2f} "
              f"{r['hwm'] / 1e6:7.1f}MB {r['rss_min'] / 1e6:8.1f}-{r['rss_max'] / 1e6:.1f}MB "
              f"{r['drift'] / 1e6:+5.1f}MB {r['client_cpu_per_m']:15.2f} "
              f"{r['filter_errors']:10.0f} {r['metrics_ms']:>12}")
    res = dict(rows)
    if rows:
        r0 = rows[0][1]
        print(f"  ({r0['json_per_event']:.0f} bytes of JSON per event, "
              f"{r0['wire_per_event']:.0f} on the wire; RSS sampled every 100 ms, "
              f"steady = the last 80% of each row, drift = max RSS of its last 40% minus max "
              f"of 20-60%; /metrics ms = median/max time to answer GET /metrics every 100 ms "
              f"during the row)")
    if opts.soak:
        try:
            r = run_row(ljblast, path, work, "soak", "pipeline", 2, opts.soak, opts)
            print(f"soak: pipeline w2, {r['events']:,} events in {r['seconds']:.0f} s "
                  f"({r['eps']:,.0f}/s, {r['cpu_per_m']:.2f} CPU s/M); peak RSS of each tenth of "
                  f"the run, MB: " + " ".join(f"{v / 1e6:.1f}" for v in r["deciles"])
                  + f"; VmHWM {r['hwm'] / 1e6:.1f} MB")
        except Exception as e:  # noqa: BLE001
            print(f"soak failed: {e}")
            keep = True
    print(f"load average after the rows: {loadavg()}")

    # The grok engine alone.
    print("\n-- grok engine alone: tests/bench/grok_bench.c (CPU time, its 324-byte line) --")
    gb_out, gb = run_grok_bench(opts.grok_iterations)
    print(gb_out.rstrip())

    # Each stage of a worker alone.
    print("\n-- the worker's stages alone: tests/bench/stage_bench.c --")
    try:
        print(run_stage_bench(opts.grok_iterations).rstrip())
    except Exception as e:  # noqa: BLE001
        print(f"stage_bench failed: {e}")

    # The peer.
    peer = {}
    if not opts.no_peer:
        exe, why = build_gogrok()
        if exe is None:
            print(f"\ngo-grok peer unavailable: {why}")
        else:
            print("\n-- peer: github.com/elastic/go-grok (Go regexp), one goroutine --")
            line_file = os.path.join(work, "grok_bench_line.log")
            with open(line_file, "w") as f:
                f.write(GROK_BENCH_LINE + "\n")
            runs = [("corpus, grok", path, "grok", None),
                    ("corpus, grok+date+convert", path, "pipeline", None),
                    ("corpus, ^...$ anchored", path, "grok", "^%{COMBINEDAPACHELOG}$"),
                    ("grok_bench's line", line_file, "grok", None)]
            print(f"{'run':28} {'lines/s':>9} {'ns/line (thread CPU)':>21} {'CPU s/M':>9} "
                  f"{'hits':>12}")
            for name, p, mode, pat in runs:
                try:
                    g = run_gogrok(exe, p, mode, opts.peer_seconds, pat, lines=events)
                except Exception as e:  # noqa: BLE001
                    print(f"{name:28} failed: {e}")
                    continue
                peer[name] = g
                print(f"{name:28} {g['lines_per_s']:9,.0f} {g['ns_per_line']:21,.0f} "
                      f"{g['cpu_s_per_million']:9.1f} {int(g['hits']):>6}/{int(g['lines']):<6}")

    # Ratios.
    print("\n-- ratios --")
    pipe1, pipe2 = res.get("pipeline w1"), res.get("pipeline w2")
    base, grok = res.get("baseline w1"), res.get("grok w1")
    if "onig_search (bare)" in gb:
        bare = gb["onig_search (bare)"]
        filt = gb.get("filter, 11 fields stored")
        if filt:
            print(f"grok filter / bare onig_search (grok_bench, same line):  {filt / bare:.2f}x "
                  f"({filt:.0f} / {bare:.0f} ns)")
    if base and grok:
        insitu = (grok["cpu_per_m"] - base["cpu_per_m"]) * 1e3
        print(f"grok filter in the aggregator, corpus lines: {insitu:,.0f} ns/event "
              f"(grok row CPU - baseline CPU)")
    pg = peer.get("corpus, grok+date+convert")
    pgg = peer.get("corpus, grok")
    for name, r in (("w1", pipe1), ("w2", pipe2)):
        if r and pg:
            print(f"sluice pipeline {name} events/s per worker / go-grok grok+date+convert "
                  f"lines/s: {r['eps'] / r['workers'] / pg['lines_per_s']:.1f}x "
                  f"({r['eps'] / r['workers']:,.0f} / {pg['lines_per_s']:,.0f})")
    if pipe1 and pg:
        print(f"CPU per event, go-grok grok+date+convert / sluice pipeline w1 (whole aggregator):"
              f" {pg['cpu_s_per_million'] / pipe1['cpu_per_m']:.1f}x "
              f"({pg['cpu_s_per_million']:.1f} / {pipe1['cpu_per_m']:.2f} CPU s/M)")
    if base and grok and pgg:
        insitu = (grok["cpu_per_m"] - base["cpu_per_m"]) * 1e3
        if insitu > 0:
            print(f"grok on the corpus, go-grok ns/line / sluice grok filter in situ: "
                  f"{pgg['ns_per_line'] / insitu:.1f}x")
    gl = peer.get("grok_bench's line")
    if gl and gb.get("filter, 11 fields stored"):
        print(f"grok on grok_bench's line, go-grok / sluice filter (both CPU time): "
              f"{gl['ns_per_line'] / gb['filter, 11 fields stored']:.1f}x")
    if pipe1:
        print(f"sluice pipeline w1 / Logstash anchor (97k events/s per worker, quoted in #5, not "
              f"measured here): {pipe1['eps'] / 97000:.1f}x")
    # The throughput issue's targets, next to what this run measured (figures, not verdicts).
    print("\n-- against the throughput issue's targets --")
    if pipe1:
        print(f"grok+date+mutate w1: {pipe1['eps']:,.0f} events/s (target >= 250,000), "
              f"{pipe1['cpu_per_m']:.2f} aggregator CPU s/M (target <= 4)")
    if pipe1 and pipe2:
        print(f"w2 / w1 events/s: {pipe2['eps'] / pipe1['eps']:.2f}x (target >= 1.5x)")
    if base:
        print(f"no-filter pass-through: {base['cpu_per_m']:.2f} aggregator CPU s/M "
              f"(target <= 1.2)")
    if gb.get("filter, 11 fields stored") and gb.get("onig_search (bare)"):
        print(f"grok filter / bare onig_search: "
              f"{gb['filter, 11 fields stored'] / gb['onig_search (bare)']:.2f}x (target <= 1.3x)")
    print(f"load average at the end: {loadavg()}")
    if keep:
        print(f"(work directory kept: {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return res


def run_ab(lines, events, opts):
    """Old and new aggregator binaries alternately, row by row (see --against)."""
    path = corpus(lines)
    old, new = os.path.abspath(opts.against), os.path.join(BUILD, "sluice-aggregator")
    print(f"\n== Aggregator pipeline, old against new, alternating ==")
    print(f"old: {old}\nnew: {new}\nload average at start {loadavg()}; {events} events per run, "
          f"{opts.rounds} rounds")
    ljblast = build_ljblast()
    work = tempfile.mkdtemp(prefix="sluice-pbench-ab-")
    plan = [(f"{f} w{w}", "none" if f == "baseline" else f, w)
            for f, w in (row.rsplit("-w", 1) if "-w" in row else (row, "1")
                         for row in opts.ab_rows.split(","))]
    plan = [(name, filters, int(w)) for name, filters, w in plan]
    if opts.old_without_ecs_option:
        plan = [row for row in plan if row[1] != "ecs"]
    got = {(name, which): [] for name, _, _ in plan for which in ("old", "new")}
    print(f"\n{'row':14} {'binary':6} {'round':>5} {'events/s':>10} {'agg CPU s/M':>12}")
    for rnd in range(opts.rounds):
        for name, filters, workers in plan:
            order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
            for which in order:
                r = run_row(ljblast, path, work, f"{name.replace(' ', '-')}-{which}", filters,
                            workers, events, opts, exe=old if which == "old" else new,
                            pre_ecs=which == "old" and opts.old_without_ecs_option)
                if r["filter_errors"]:
                    print(f"  ({which} {name}: {r['filter_errors']:.0f} filter errors)")
                got[(name, which)].append(r)
                print(f"{name:14} {which:6} {rnd + 1:5} {r['eps']:10,.0f} {r['cpu_per_m']:12.2f}")

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    print(f"\nmedians of {opts.rounds} rounds (load average at the end {loadavg()}):")
    print(f"{'row':14} {'old ev/s':>10} {'new ev/s':>10} {'new/old':>8} {'old CPU s/M':>12} "
          f"{'new CPU s/M':>12} {'new/old':>8}")
    for name, _, _ in plan:
        o, n = got[(name, "old")], got[(name, "new")]
        oe, ne = med([r["eps"] for r in o]), med([r["eps"] for r in n])
        oc, nc = med([r["cpu_per_m"] for r in o]), med([r["cpu_per_m"] for r in n])
        print(f"{name:14} {oe:10,.0f} {ne:10,.0f} {ne / oe:8.2f} {oc:12.2f} {nc:12.2f} "
              f"{nc / oc:8.2f}")
    shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", "1000000")),
                    help="corpus lines (bench.py's corpus, cached)")
    ap.add_argument("--events", type=int,
                    default=int(os.environ.get("BENCH_PIPELINE_EVENTS", "1000000")),
                    help="events per row")
    ap.add_argument("--distinct", type=int, default=200000,
                    help="corpus lines encoded (then resent in turn)")
    ap.add_argument("--window", type=int, default=2048, help="events per window")
    ap.add_argument("--pipelined", type=int, default=4, help="windows in flight per connection")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--peer-seconds", type=float, default=10.0,
                    help="wall-time budget of each go-grok run")
    ap.add_argument("--grok-iterations", type=int, default=200000)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--soak", type=int, default=int(os.environ.get("BENCH_SOAK_EVENTS", "0")),
                    help="also run pipeline w2 for this many events and print RSS per tenth")
    ap.add_argument("--against", metavar="OLD_AGGREGATOR",
                    help="only old-against-new rows, alternating (see the file comment)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --against")
    ap.add_argument("--ab-rows", default="baseline,pipeline,ecs",
                    help="rows of --against: baseline, pipeline or ecs, each with -w2 for "
                         "two workers (e.g. baseline,pipeline-w2)")
    ap.add_argument("--old-without-ecs-option", action="store_true",
                    help="OLD_AGGREGATOR predates grok's ecs_compatibility (see the file comment)")
    opts = ap.parse_args(argv)
    opts.distinct = min(opts.distinct, opts.lines, opts.events)
    if opts.against:
        run_ab(opts.lines, opts.events, opts)
    else:
        run(opts.lines, opts.events, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

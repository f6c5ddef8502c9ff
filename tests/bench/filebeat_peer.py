#!/usr/bin/env python3
"""Filebeat 7.17.29 beside sluice in `make bench`: figures, never a verdict.

Real Filebeat (built once from source by tests/servers/filebeat into .cache/filebeat)
reads bench.py's corpus from its first byte with a filestream input and ships it with
`output.logstash` (Lumberjack v2) to the same receivers the shipper rows use:

  filebeat 7.17.29 -> ljsink       tests/bench/ljsink.c, which ACKs each window without
                                   decompressing it (compare: shipper zstd / zlib -> ljsink)
  filebeat -> aggregator           build/sluice-aggregator, file output to /dev/null
                                   (compare: shipper zstd / zlib -> aggregator)

Filebeat runs with its output defaults, written out in the configuration: zlib
compression_level 3, bulk_max_size 2048, worker 1, pipelining 2; the memory queue keeps
its defaults (4096 events, flush.min_events 2048, flush.timeout 1s) unless
BENCH_FILEBEAT_QUEUE sets queue.mem.events. Each run has a fresh directory (home, data,
registry, logs), so the file is new to Filebeat.

Measured like the other peers: the clock starts when Filebeat is started and stops when
the receiver's ACKs for every line have been counted - by Filebeat's own counter
(libbeat.output.events.acked from its HTTP /stats endpoint, polled every 20 ms), exactly
as the shipper rows read sluice_shipper_events_acked_total from the shipper's /metrics.
ljsink keeps no count; the aggregator's events_received/acked_total are checked against
the corpus after the run. CPU seconds are utime+stime of the Filebeat process (all
threads) from /proc/PID/stat, peak RSS its VmHWM, both read when the last ACK is counted.
Then Filebeat is left 0.5 s (a late duplicate would show in the counters), and stopped by
PID: SIGTERM, SIGKILL after 15 s. Every wait has a deadline.

    python3 tests/bench/filebeat_peer.py [--lines N]   # the Filebeat rows alone

Environment: BENCH_FILEBEAT_INPUT (filestream | log, default filestream),
BENCH_FILEBEAT_QUEUE (queue.mem.events; default: Filebeat's 4096), FILEBEAT_BUILD_TIMEOUT,
SLUICE_CACHE, SLUICE_BUILD.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BUILD, ROOT, free_port, ljsink, metric, proc_stat, run_sluice  # noqa: E402
from peers import stop  # noqa: E402

VERSION = "7.17.29"
SCRIPT = os.path.join(ROOT, "tests", "servers", "filebeat")
# Filebeat's output.logstash defaults (libbeat/outputs/logstash/config.go), written out.
OUTPUT = dict(compression_level=3, bulk_max_size=2048, worker=1, pipelining=2)


class FilebeatUnavailable(RuntimeError):
    pass


def _env_version():
    return dict(os.environ, FILEBEAT_VERSION=VERSION)


def filebeat_binary(build=True):
    """The Filebeat binary's path; builds it (minutes, once) when it was never built.
    Raises FilebeatUnavailable with the reason when it is not there and cannot be."""
    if not os.access(SCRIPT, os.X_OK):
        raise FilebeatUnavailable(f"{SCRIPT} missing")
    try:
        r = subprocess.run([SCRIPT, "path"], capture_output=True, text=True, timeout=60,
                           env=_env_version())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FilebeatUnavailable(f"{SCRIPT} path: {e}")
    if r.returncode == 0:
        return r.stdout.strip().splitlines()[-1]
    if r.returncode == 3 and build:
        print(f"filebeat: not built yet; running {SCRIPT} build (a few minutes, once; "
              f"progress on stderr)", flush=True)
        limit = int(os.environ.get("FILEBEAT_BUILD_TIMEOUT", "1800")) + 120
        try:
            r = subprocess.run([SCRIPT, "build"], stdout=subprocess.PIPE, stderr=None,
                               text=True, timeout=limit, env=_env_version())
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FilebeatUnavailable(f"{SCRIPT} build: {e}")
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip().splitlines()[-1]
        fbdir = os.environ.get("FILEBEAT_DIR") or os.path.join(
            os.environ.get("SLUICE_CACHE", os.path.join(ROOT, ".cache")), "filebeat")
        failed = os.path.join(fbdir, "build.failed")
        why = open(failed).read().strip() if os.path.exists(failed) else f"exit {r.returncode}"
        raise FilebeatUnavailable(why.splitlines()[0] + f" (details: {failed})")
    why = (r.stderr.strip() or f"exit {r.returncode}").splitlines()
    raise FilebeatUnavailable(why[0])


def config(path, host, port, http_port, home, input_type="filestream", queue_events=None):
    """filebeat.yml for one run; returns its path."""
    if input_type == "filestream":
        inp = (f"  - type: filestream\n    id: sluice-bench\n    paths: [{json.dumps(path)}]\n")
    elif input_type == "log":
        inp = f"  - type: log\n    paths: [{json.dumps(path)}]\n"  # tail_files: false (default)
    else:
        raise ValueError(f"input type {input_type!r}: filestream or log")
    out = "".join(f"  {k}: {v}\n" for k, v in OUTPUT.items())
    queue = f"queue.mem.events: {queue_events}\n" if queue_events else ""
    text = (f"filebeat.inputs:\n{inp}"
            f"output.logstash:\n  hosts: [\"{host}:{port}\"]\n{out}  timeout: 30s\n"
            f"{queue}"
            "logging.level: info\n"
            "logging.metrics.enabled: false\n"  # no periodic metrics lines in the log
            "monitoring.enabled: false\n"
            # The counters the clock stops on (as the shipper's /metrics for the shipper).
            f"http.enabled: true\nhttp.host: 127.0.0.1\nhttp.port: {http_port}\n")
    cfg = os.path.join(home, "filebeat.yml")
    with open(cfg, "w") as f:
        f.write(text)
    return cfg


def stats(http_port, timeout=2.0):
    """Filebeat's /stats as a dict, or None when it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/stats", timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _output(s):
    """libbeat.output of a /stats answer ({} before the output has started)."""
    return ((s or {}).get("libbeat") or {}).get("output") or {}


def _out_events(s):
    return _output(s).get("events") or {}


def run_filebeat(exe, path, lines, workdir, host, port, tag="filebeat", timeout=None, stall=60,
                 input_type=None, queue_events=None):
    """Runs Filebeat on `path` until the receiver at host:port has ACKed `lines` events.

    Returns dict(seconds, cpu, rss, wire, acked, startup, exit, events, argv, log); raises
    RuntimeError (with the log's tail) when Filebeat exits, stalls `stall` s without a new
    ACK, or does not finish within `timeout` s (120 + lines/2000 by default)."""
    input_type = input_type or os.environ.get("BENCH_FILEBEAT_INPUT", "filestream")
    if queue_events is None and os.environ.get("BENCH_FILEBEAT_QUEUE"):
        queue_events = int(os.environ["BENCH_FILEBEAT_QUEUE"])
    if timeout is None:
        timeout = 120 + lines / 2000
    home = os.path.join(workdir, tag)
    shutil.rmtree(home, ignore_errors=True)  # fresh registry for every run
    for sub in ("data", "logs", "module"):   # module/: else Filebeat logs an ERROR
        os.makedirs(os.path.join(home, sub))
    http_port = free_port()
    cfg = config(path, host, port, http_port, home, input_type, queue_events)
    argv = [exe, "-e", "--strict.perms=false", "-c", cfg, "--path.home", home,
            "--path.config", home, "--path.data", os.path.join(home, "data"),
            "--path.logs", os.path.join(home, "logs")]
    logpath = os.path.join(home, "filebeat.log")
    log = open(logpath, "wb")
    log.write(("$ " + " ".join(argv) + "\n").encode())
    log.flush()

    def tail():
        log.flush()
        with open(logpath, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        end = t0 + timeout
        startup = None
        acked, moved = -1, t0
        # When all but the last partial window were ACKed: Filebeat's queue holds a partial
        # batch up to flush.timeout (1 s), so the tail of a short run can weigh.
        full, t_full = lines - lines % OUTPUT["bulk_max_size"], None
        while True:
            now = time.monotonic()
            if p.poll() is not None:
                raise RuntimeError(f"filebeat exited with {p.returncode} after {max(acked, 0)} "
                                   f"of {lines} ACKed; log {logpath}:\n{tail()}")
            s = stats(http_port)
            if s is not None:
                if startup is None:
                    startup = now - t0
                a = int(_out_events(s).get("acked", 0))
                if t_full is None and a >= full:
                    t_full = now - t0
                if a >= lines:
                    break
                if a != acked:
                    acked, moved = a, now
            if now > end:
                raise RuntimeError(f"filebeat: {max(acked, 0)} of {lines} ACKed after "
                                   f"{timeout:.0f}s; log {logpath}:\n{tail()}")
            if now - moved > stall:
                raise RuntimeError(f"filebeat: no ACK for {stall}s at {max(acked, 0)} of {lines};"
                                   f" log {logpath}:\n{tail()}")
            time.sleep(0.02)
        dt = time.monotonic() - t0
        cpu, rss = proc_stat(p.pid)
        time.sleep(0.5)  # a resent window (duplicates) would show in the counters now
        s = stats(http_port) or s
    finally:
        rc = stop(p)
        log.close()
    ev = _out_events(s)
    return dict(seconds=dt, cpu=cpu, rss=rss, wire=float((_output(s).get("write") or {}).get("bytes", 0)),
                acked=int(ev.get("acked", 0)), events=ev, startup=startup, exit=rc,
                tail=(dt - t_full) if t_full is not None else 0.0, tail_events=lines - full,
                argv=argv, log=logpath, input=input_type,
                queue=queue_events or 4096)


def _start_aggregator(workdir, tag):
    """build/sluice-aggregator as bench.py's rows run it: file output to /dev/null."""
    lj, am = free_port(), free_port()
    cfg = os.path.join(workdir, f"agg-{tag}.yml")
    with open(cfg, "w") as f:
        f.write(f'input: {{listen: "127.0.0.1:{lj}"}}\noutputs:\n  - file: {{path: /dev/null}}\n'
                f'metrics: {{listen: "127.0.0.1:{am}"}}\n')
    log = open(os.path.join(workdir, f"agg-{tag}.log"), "wb")
    p = subprocess.Popen([os.path.join(BUILD, "sluice-aggregator"), "-c", cfg], stderr=log)
    end = time.monotonic() + 30
    while True:
        up = all(socket.socket().connect_ex(("127.0.0.1", x)) == 0 for x in (lj, am))
        if up:
            return p, lj, am, log
        if p.poll() is not None or time.monotonic() > end:
            stop(p)
            log.close()
            raise RuntimeError(f"aggregator did not start (see {workdir}/agg-{tag}.log)")
        time.sleep(0.02)


def run_to_sink(exe, path, lines, workdir):
    sink, port = ljsink()
    try:
        r = run_filebeat(exe, path, lines, workdir, "127.0.0.1", port, tag="filebeat-sink")
    finally:
        stop(sink)
    r["ok"] = r["acked"] == lines and not r["events"].get("failed") and \
        not r["events"].get("dropped")
    r["check"] = (f"Filebeat counted {r['acked']} events ACKed by ljsink, "
                  f"{r['events'].get('failed', 0)} failed, {r['events'].get('dropped', 0)} "
                  f"dropped, {r['events'].get('batches', 0)} windows")
    return r


def run_to_aggregator(exe, path, lines, workdir):
    agg, lj, am, log = _start_aggregator(workdir, "filebeat")
    try:
        r = run_filebeat(exe, path, lines, workdir, "127.0.0.1", lj, tag="filebeat-agg")
        r["agg_cpu"], r["agg_rss"] = proc_stat(agg.pid)
        got = metric(am, "sluice_aggregator_events_received_total")
        acked = metric(am, "sluice_aggregator_events_acked_total")
        windows = metric(am, "sluice_aggregator_windows_total")
    finally:
        stop(agg, 30)
        log.close()
    r["ok"] = r["acked"] == lines and got == lines and acked == lines
    r["check"] = (f"aggregator received {got:.0f} and ACKed {acked:.0f} events in "
                  f"{windows:.0f} windows; Filebeat counted {r['acked']} ACKed, "
                  f"{r['events'].get('failed', 0)} failed")
    return r


def _row(name, lines, size, seconds, cpu, rss, wire, agg_cpu=None, agg_rss=None):
    """One line in bench.py's table columns."""
    m = lines / 1e6
    recv = (f"{agg_cpu / m:13.2f} {agg_rss / 1e6:12.1f}" if agg_cpu is not None else " " * 26)
    return (f"{name:28} {lines / seconds:12,.0f} {size / seconds / 1e6:8.1f} "
            f"{cpu / m:16.2f} {rss / 1e6:15.1f} {recv} {wire / 1e6:8.1f}")


def rows(path, lines, workdir, results):
    """bench.py's Filebeat rows, printed in its table; `results` holds the shipper runs
    {(target, compression): run_sluice() result}, and gets ("aggregator", "zlib") added
    (the like-for-like partner of Filebeat -> aggregator). Returns {name: result} or None
    when Filebeat is unavailable; never raises for a Filebeat problem (prints it)."""
    size = os.path.getsize(path)
    try:
        exe = filebeat_binary()
    except FilebeatUnavailable as e:
        print(f"{'filebeat ' + VERSION:28} skipped: cannot be built: {e}")
        return None
    out = {}
    if ("aggregator", "zlib") not in results:
        try:
            r = run_sluice(path, lines, "zlib", workdir, "aggregator")
            results[("aggregator", "zlib")] = r
            print(_row("shipper zlib -> aggregator", lines, size, r["seconds"], r["ship_cpu"],
                       r["ship_rss"], r["wire"], r["agg_cpu"], r["agg_rss"]))
        except Exception as e:  # noqa: BLE001 - figures, never a failure
            print(f"{'shipper zlib -> aggregator':28} failed: {e}")
    for name, fn in ((f"filebeat {VERSION} -> ljsink", run_to_sink),
                     ("filebeat -> aggregator", run_to_aggregator)):
        try:
            r = fn(exe, path, lines, workdir)
        except Exception as e:  # noqa: BLE001
            print(f"{name:28} failed: {str(e).splitlines()[0]} (work dir {workdir} kept)")
            out["failed"] = True
            continue
        out[name] = r
        print(_row(name, lines, size, r["seconds"], r["cpu"], r["rss"], r["wire"],
                   r.get("agg_cpu"), r.get("agg_rss")))
    return out


def describe(out, lines):
    """Lines to print under the table: what Filebeat delivered, how it was run."""
    notes = []
    for name, r in out.items():
        if name == "failed":
            continue
        notes.append(f"{name}: {r['check']}"
                     + ("" if r["ok"] else f"  << NOT every line exactly once (expected {lines})"))
    r = next((r for n, r in out.items() if n != "failed"), None)
    if r:
        notes.append(f"filebeat {VERSION}: {r['input']} input from the first byte, output.logstash "
                     + ", ".join(f"{k} {v}" for k, v in OUTPUT.items())
                     + f", queue.mem.events {r['queue']}; fresh registry per run; "
                     f"/stats answered {r['startup']:.2f}s after start (inside the clock)")
        for n, r in out.items():
            if n == "failed" or not r["tail_events"]:
                continue
            full = lines - r["tail_events"]
            notes.append(f"{n}: the last, partial window ({r['tail_events']} events) was ACKed "
                         f"{r['tail']:.2f}s after the full ones (Filebeat's queue waits up to "
                         f"flush.timeout 1s for 2048 events); without that tail "
                         f"{full / (r['seconds'] - r['tail']):,.0f} lines/s")
    return notes


def ratios(out, results, lines):
    """The ratio lines: sluice shipper / Filebeat, per pair."""
    text = []
    m = lines / 1e6
    pairs = [(f"filebeat {VERSION} -> ljsink", ("sink", "zstd")),
             (f"filebeat {VERSION} -> ljsink", ("sink", "zlib")),
             ("filebeat -> aggregator", ("aggregator", "zstd")),
             ("filebeat -> aggregator", ("aggregator", "zlib"))]
    for fb_name, key in pairs:
        fb, sl = out.get(fb_name), results.get(key)
        if not fb or not sl:
            continue
        target = "ljsink" if key[0] == "sink" else "aggregator"
        like = " (like for like: zlib 3 both)" if key[1] == "zlib" else ""
        line = (f"ratio shipper {key[1]} / filebeat -> {target}{like}: "
                f"{fb['seconds'] / sl['seconds']:.2f}x lines/s "
                f"({lines / sl['seconds']:,.0f} / {lines / fb['seconds']:,.0f}); "
                f"CPU per line filebeat / shipper {fb['cpu'] / sl['ship_cpu']:.2f}x "
                f"({fb['cpu'] / m:.2f} / {sl['ship_cpu'] / m:.2f} s/M)")
        if key[0] == "aggregator":
            line += (f"; aggregator CPU per line fed by filebeat / by shipper "
                     f"{fb['agg_cpu'] / sl['agg_cpu']:.2f}x")
        text.append(line)
    return text


def main():
    import argparse
    import tempfile
    from bench import corpus
    ap = argparse.ArgumentParser(description="Filebeat rows of make bench, alone")
    ap.add_argument("--lines", type=int, default=int(os.environ.get("BENCH_LINES", "1000000")))
    args = ap.parse_args()
    path = corpus(args.lines)
    work = tempfile.mkdtemp(prefix="sluice-fbbench-")
    size = os.path.getsize(path)
    print(f"corpus: {args.lines} lines, {size / 1e6:.1f} MB")
    print(f"{'pipeline':28} {'lines/s':>12} {'MB/s':>8} {'sender cpu s/M':>16} "
          f"{'sender RSS MB':>15} {'aggr cpu s/M':>13} {'aggr RSS MB':>12} {'wire MB':>8}")
    results = {}
    for target, comp in (("sink", "zstd"), ("sink", "zlib"), ("aggregator", "zstd")):
        r = results[(target, comp)] = run_sluice(path, args.lines, comp, work, target)
        agg = (r["agg_cpu"], r["agg_rss"]) if target == "aggregator" else (None, None)
        print(_row(f"shipper {comp} -> {'ljsink' if target == 'sink' else 'aggregator'}",
                   args.lines, size, r["seconds"], r["ship_cpu"], r["ship_rss"], r["wire"], *agg))
    out = rows(path, args.lines, work, results)
    if out:
        for n in describe(out, args.lines) + ratios(out, results, args.lines):
            print("  " + n)
    if out and not out.get("failed"):
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

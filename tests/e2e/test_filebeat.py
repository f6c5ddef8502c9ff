"""Real Filebeat 7.17.29 (built once by tests/servers/filebeat) ships a log file to
sluice-aggregator over Lumberjack v2, as it would to Logstash's beats input.

Filebeat reads files in the test's tmp_path with a filestream input and its
`output.logstash` points at one or two aggregators, each writing to a file
output. Every line written must arrive exactly once: events are keyed by their
origin (log.file.path, log.offset) and their message is compared with the line
written there. Cases: zlib level 0 / 9 x pipelining 0 / 5, loadbalance over two
aggregators, TLS (server-only and mutual), an aggregator killed with SIGKILL
mid-stream and restarted on the same port, and two windows that Logstash
accepts and sluice did not (bulk_max_size 20000; 2048 lines of 64 KiB).

The tests skip only when the Filebeat binary cannot be built, with the reason."""

import collections
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import DEADLINE, ROOT, free_port, metrics_of, wait_for, write_config
from stack import append_lines
from test_aggregator import base_config, start_agg  # noqa: F401 (fixture)
from test_aggregator_tls import pki, tls_input  # noqa: F401 (fixture)

SCRIPT = os.path.join(ROOT, "tests", "servers", "filebeat")
VERSION = "7.17.29"
# How long Filebeat may take to deliver one test's lines (the sanitized aggregator
# is the slow side; a test takes a few seconds when all is well).
DELIVERY = float(os.environ.get("SLUICE_FILEBEAT_DEADLINE", DEADLINE))


def _say(request, text):
    """Shows text on the terminal even under pytest's output capture."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman:
        with capman.global_and_fixture_disabled():
            print("\n" + text, flush=True)
    else:
        print(text, flush=True)


@pytest.fixture(scope="session")
def filebeat_bin(request):
    """The Filebeat binary: already built (make test builds it first), else built
    now. If it cannot be built, every test here skips with the reason."""
    r = subprocess.run([SCRIPT, "path"], capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return r.stdout.strip().splitlines()[-1]
    if r.returncode == 3:  # never built: build it (bounded by FILEBEAT_BUILD_TIMEOUT)
        _say(request, "tests/servers/filebeat build: Filebeat is not built yet; building it "
                      "(a few minutes, once)")
        r = subprocess.run([SCRIPT, "build"], capture_output=True, text=True,
                           timeout=int(os.environ.get("FILEBEAT_BUILD_TIMEOUT", "1800")) + 120)
        if r.returncode == 0:
            return r.stdout.strip().splitlines()[-1]
    why = "\n".join(r.stderr.strip().splitlines()[-30:]) or f"exit {r.returncode}"
    _say(request, f"SKIPPING the Filebeat tests: Filebeat {VERSION} cannot be built:\n{why}")
    reason = [line for line in why.splitlines() if "FAILED" in line or "failed" in line]
    pytest.skip(f"Filebeat {VERSION} cannot be built (tests/servers/filebeat build): "
                + (reason or why.splitlines())[0])


# --- lines written, events arrived ----------------------------------------------------

def line_text(i, size):
    """Line i, exactly size bytes (without the newline), unique by its head."""
    head = f"fb-{i:07d} "
    return head + (f"{i % 97:02d}abcdefghijklmnopqrstuvwxyz" * (size // 28 + 1))[:size - len(head)]


class Lines:
    """The lines written to one log file: {(path, offset): message}."""

    def __init__(self, path):
        self.path = str(path)
        self.expected = {}
        self.lock = threading.Lock()

    def write(self, first, n, size=60):
        lines = [line_text(i, size) for i in range(first, first + n)]
        with self.lock:
            for off, text in append_lines(self.path, lines):
                self.expected[(self.path, off)] = text


def _digest(text):
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


class Arrivals:
    """The events in one aggregator's file output, read incrementally (the file may
    be hundreds of MB): how often each origin arrived, and a digest of its message."""

    def __init__(self, path):
        self.path = str(path)
        self.off = 0
        self.times = collections.Counter()
        self.digest = {}
        self.conflicts = []  # the same origin arrived with different messages
        self.first = None

    def poll(self):
        if not os.path.exists(self.path):
            return self
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for raw in data[:end].split(b"\n"):
            if not raw:
                continue
            e = json.loads(raw)
            if self.first is None:
                self.first = e
            key = (e["log"]["file"]["path"], e["log"]["offset"])
            d = _digest(e["message"])
            if self.digest.setdefault(key, d) != d:
                self.conflicts.append(key)
            self.times[key] += 1
        self.off += end
        return self

    def total(self):
        return sum(self.times.values())


def check_exactly_once(lines, arrivals):
    """Every line written arrived exactly once over all the aggregators, with its text."""
    union = collections.Counter()
    for a in arrivals:
        a.poll()
        assert not a.conflicts, f"{a.path}: origins with two messages: {a.conflicts[:5]}"
        union.update(a.times)
    missing = set(lines.expected) - set(union)
    extra = set(union) - set(lines.expected)
    dups = {k: n for k, n in union.items() if n > 1}
    assert not missing and not extra and not dups, (
        f"{len(lines.expected)} lines written, {sum(union.values())} events arrived: "
        f"{len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(extra)} unknown "
        f"(e.g. {sorted(extra)[:3]}), {len(dups)} duplicated (e.g. {sorted(dups.items())[:3]})")
    for a in arrivals:
        for key in a.times:
            assert a.digest[key] == _digest(lines.expected[key]), f"wrong message at {key}"


def check_filebeat_event(e):
    """The first event is what Filebeat 7.17's filestream input makes of a line."""
    assert e["agent"]["type"] == "filebeat" and e["agent"]["version"] == VERSION, e["agent"]
    assert e["input"]["type"] == "filestream", e.get("input")
    assert isinstance(e["log"]["offset"], int) and e["log"]["file"]["path"].endswith(".log")
    assert "@timestamp" in e and "host" in e and "ecs" in e, sorted(e)


# --- aggregators and Filebeat ----------------------------------------------------------

def file_output(d):
    return f'    - file: {{path: "{d}/out/events.ndjson"}}\n'


def agg_config(d, port=0, input_extra=""):
    """test_aggregator's base config, with a fixed output file (Filebeat stamps events
    with the real clock) and, if given, a fixed listening port (restart on the same port)."""
    text = base_config(d, input_extra, output=file_output(d))
    if port:
        text = text.replace("  listen: 127.0.0.1:0\n", f"  listen: 127.0.0.1:{port}\n", 1)
    return text


def new_agg(start_agg, tmp_path, name, port=0, input_extra=""):  # noqa: F811
    d = tmp_path / name
    d.mkdir()
    a = start_agg(d, agg_config(d, port, input_extra))
    a.arrivals = Arrivals(d / "out" / "events.ndjson")
    return a


def protocol_errors(agg, busy_ok=False):
    """{reason: count} of the aggregator's protocol errors (empty when none).
    busy_ok: a /metrics that does not answer in time (a busy sanitized aggregator on a
    loaded machine) counts as no news rather than an error."""
    try:
        m = metrics_of(agg.mport)
    except OSError:
        if busy_ok:
            return {}
        raise
    return {k.split('"')[1]: v for k, v in m.items()
            if k.startswith("sluice_aggregator_protocol_errors_total{") and v}


def yaml_list(items):
    return "[" + ", ".join(json.dumps(str(x)) for x in items) + "]"


def start_filebeat(procs, filebeat_bin, tmp_path, logs, hosts, output_extra="", top_extra=""):
    home = tmp_path / "fb"
    for sub in ("data", "logs", "module"):  # module/: else Filebeat logs an ERROR
        (home / sub).mkdir(parents=True, exist_ok=True)
    cfg = write_config(home / "filebeat.yml", f"""
filebeat.inputs:
  - type: filestream
    id: sluice-e2e
    paths: [{json.dumps(str(logs) + "/*.log")}]
    prospector.scanner.check_interval: 100ms
filebeat.registry.flush: 100ms
output.logstash:
  hosts: {yaml_list(hosts)}
  timeout: 30s
  backoff.init: 100ms
  backoff.max: 1s
{output_extra}
{top_extra}
logging.level: info
logging.metrics.enabled: false
monitoring.enabled: false
http.enabled: false
""")
    p = procs([filebeat_bin, "-e", "--strict.perms=false", "-c", str(cfg),
               "--path.home", str(home), "--path.config", str(home),
               "--path.data", str(home / "data"), "--path.logs", str(home / "logs")],
              str(tmp_path / "filebeat.log"))
    wait_for(lambda: _fb_started(p), timeout=DEADLINE, what="Filebeat to start its input")
    return p


def _fb_started(p):
    if not p.alive():
        raise AssertionError(f"filebeat exited early:\n{p.logtext()[-4000:]}")
    return "Starting input" in p.logtext() or "filestream" in p.logtext()


def wait_delivered(lines, aggs, fb, timeout=DELIVERY, fail_fast=True):
    """Waits until every line written has arrived at least once (union of aggs).
    fail_fast: an aggregator protocol error ends the wait at once, with the reason."""
    want = set(lines.expected)
    t0 = time.monotonic()

    def done():
        seen = set()
        for a in aggs:
            seen.update(a.arrivals.poll().times)
        if fail_fast:
            for a in aggs:
                if not a.proc.alive():  # killed by the test: no metrics to ask
                    continue
                errs = protocol_errors(a, busy_ok=True)
                if errs:
                    raise AssertionError(
                        f"the aggregator refused Filebeat after {len(seen & want)} of "
                        f"{len(want)} lines: protocol errors {errs}\naggregator log:\n"
                        f"{a.proc.logtext()[-2500:]}\nfilebeat log (errors):\n"
                        + "\n".join(l for l in fb.logtext().splitlines()
                                    if "ERROR" in l or "WARN" in l)[-2500:])
        if not fb.alive():
            raise AssertionError(f"filebeat exited:\n{fb.logtext()[-4000:]}")
        return len(seen & want) == len(want) or (len(seen & want), len(want))

    try:
        wait_for(lambda: done() is True, timeout=timeout, interval=0.2,
                 what=f"{len(want)} lines delivered")
    except AssertionError as e:
        if "timed out" in str(e):
            got = len(set().union(*(set(a.arrivals.poll().times) for a in aggs)) & want)
            fblog = "\n".join(l for l in fb.logtext().splitlines() if "ERROR" in l or "WARN" in l)
            errs = [protocol_errors(a, busy_ok=True) for a in aggs if a.proc.alive()]
            raise AssertionError(f"{e}: {got} of {len(want)} lines arrived in {timeout}s; "
                                 f"aggregator protocol errors: {errs}"
                                 f"\nfilebeat log (errors):\n{fblog[-2500:]}") from None
        raise
    return time.monotonic() - t0


def stop_filebeat(fb):
    rc = fb.stop(signal.SIGTERM, timeout=30)
    assert rc == 0, f"filebeat exit {rc}:\n{fb.logtext()[-4000:]}"


def setup_logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    return logs, Lines(logs / "app.log")


# --- (a) compression x pipelining -----------------------------------------------------

@pytest.mark.parametrize("pipelining", [0, 5])
@pytest.mark.parametrize("level", [0, 9])
def test_compression_and_pipelining(procs, start_agg, filebeat_bin, tmp_path, level,  # noqa: F811
                                    pipelining):
    n = 20000
    logs, lines = setup_logs(tmp_path)
    lines.write(0, n)
    a = new_agg(start_agg, tmp_path, "agg")
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs, [f"127.0.0.1:{a.port}"],
                        f"  compression_level: {level}\n  pipelining: {pipelining}\n")
    wait_delivered(lines, [a], fb)
    # Then some more lines, to a Filebeat that is already connected and idle.
    lines.write(n, 1000)
    wait_delivered(lines, [a], fb)
    stop_filebeat(fb)
    check_exactly_once(lines, [a.arrivals])
    check_filebeat_event(a.arrivals.first)
    m = a.metrics()
    assert m["sluice_aggregator_events_acked_total"] == n + 1000
    assert protocol_errors(a) == {}


# --- (b) loadbalance over two aggregators ---------------------------------------------

def test_loadbalance_over_two_aggregators(procs, start_agg, filebeat_bin, tmp_path):  # noqa: F811
    n = 30000
    logs, lines = setup_logs(tmp_path)
    lines.write(0, n)
    a1 = new_agg(start_agg, tmp_path, "agg1")
    a2 = new_agg(start_agg, tmp_path, "agg2")
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs,
                        [f"127.0.0.1:{a1.port}", f"127.0.0.1:{a2.port}"],
                        "  loadbalance: true\n  bulk_max_size: 500\n")
    wait_delivered(lines, [a1, a2], fb)
    stop_filebeat(fb)
    check_exactly_once(lines, [a1.arrivals, a2.arrivals])
    t1, t2 = a1.arrivals.total(), a2.arrivals.total()
    print(f"loadbalance: {t1} + {t2} events")
    assert t1 > 0 and t2 > 0, f"one aggregator got nothing: {t1} / {t2}"
    for a in (a1, a2):
        assert a.metrics()["sluice_aggregator_events_acked_total"] == a.arrivals.total()
        assert protocol_errors(a) == {}


# --- (c) TLS ---------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["none", "required"])
def test_tls(procs, start_agg, filebeat_bin, tmp_path, pki, auth):  # noqa: F811
    n = 10000
    logs, lines = setup_logs(tmp_path)
    lines.write(0, n)
    a = new_agg(start_agg, tmp_path, "agg", input_extra=tls_input(pki, auth))
    ssl = f"  ssl.certificate_authorities: [{json.dumps(str(pki / 'ca.pem'))}]\n"
    if auth == "required":
        ssl += (f"  ssl.certificate: {json.dumps(str(pki / 'client.pem'))}\n"
                f"  ssl.key: {json.dumps(str(pki / 'client.key'))}\n")
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs, [f"127.0.0.1:{a.port}"], ssl)
    wait_delivered(lines, [a], fb)
    stop_filebeat(fb)
    check_exactly_once(lines, [a.arrivals])
    assert protocol_errors(a) == {}
    if auth == "required":
        assert "client certificate: CN=sluice-client,O=sluice test" in a.proc.logtext()


# --- (d) the aggregator killed mid-stream ----------------------------------------------

def test_aggregator_killed_mid_stream_and_restarted(procs, start_agg, filebeat_bin,  # noqa: F811
                                                    tmp_path, record_property):
    """SIGKILL while Filebeat streams, restart on the same port: no line is lost, and
    duplicates are only the windows that were in flight (unACKed) at the kill: each
    aggregator alone holds every line at most once, and no more lines repeat than
    Filebeat's queue can hold."""
    n, chunk, queue = 40000, 500, 4096
    logs, lines = setup_logs(tmp_path)
    port = free_port()
    a1 = new_agg(start_agg, tmp_path, "agg1", port)
    lines.write(0, chunk)
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs, [f"127.0.0.1:{port}"],
                        "  bulk_max_size: 1024\n", f"queue.mem.events: {queue}\n")
    stop = threading.Event()

    def writer():  # about 20k lines/s, while Filebeat ships and the aggregator dies
        i = chunk
        while i < n and not stop.is_set():
            lines.write(i, chunk)
            i += chunk
            time.sleep(0.025)

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: a1.arrivals.poll().total() >= n // 4, timeout=DELIVERY,
                 interval=0.01, what="a quarter of the lines at the first aggregator")
        a1.proc.kill9()
        at_kill = a1.arrivals.poll().total()
        assert at_kill < n, "everything arrived before the kill: not mid-stream"
        a2 = new_agg(start_agg, tmp_path, "agg2", port)
        t.join(DELIVERY)
    finally:
        stop.set()
        t.join()
    assert len(lines.expected) == n
    wait_delivered(lines, [a1, a2], fb)
    stop_filebeat(fb)
    a1.arrivals.poll()
    a2.arrivals.poll()
    for a in (a1, a2):
        dup = [k for k, c in a.arrivals.times.items() if c > 1]
        assert not dup, f"{a.arrivals.path}: {len(dup)} lines twice in one aggregator"
        assert not a.arrivals.conflicts
    union = a1.arrivals.times + a2.arrivals.times
    assert set(union) == set(lines.expected), "missing or unknown lines"
    dups = sorted(k for k, c in union.items() if c > 1)
    for k in union:
        assert a1.arrivals.digest.get(k, a2.arrivals.digest.get(k)) == \
            _digest(lines.expected[k]), f"wrong message at {k}"
    record_property("duplicates", len(dups))
    print(f"kill -9 at {at_kill} of {n} lines: {len(dups)} duplicates "
          f"(first aggregator {a1.arrivals.total()}, second {a2.arrivals.total()})")
    assert len(dups) <= queue, f"{len(dups)} duplicates: more than Filebeat had in flight"
    # What was resent is the tail of what the first aggregator wrote (the unACKed windows).
    if dups:
        tail = sorted(a1.arrivals.times, key=lambda k: k[1])[-len(dups):]
        assert dups == sorted(tail, key=lambda k: k), "duplicates are not the unACKed tail"


# --- (e) windows Logstash accepts: pass once big windows are processed in pieces ------

def test_bulk_max_size_20000(procs, start_agg, filebeat_bin, tmp_path):  # noqa: F811
    """A 20000-event window (Logstash takes it; go-lumber's server caps at 10000)."""
    n = 40000
    logs, lines = setup_logs(tmp_path)
    lines.write(0, n)
    a = new_agg(start_agg, tmp_path, "agg")
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs, [f"127.0.0.1:{a.port}"],
                        "  bulk_max_size: 20000\n",
                        "queue.mem:\n  events: 40000\n  flush.min_events: 20000\n"
                        "  flush.timeout: 1s\n")
    wait_delivered(lines, [a], fb)
    stop_filebeat(fb)
    check_exactly_once(lines, [a.arrivals])
    assert a.metrics()["sluice_aggregator_windows_total"] >= 2


def test_64k_lines_default_settings(procs, start_agg, filebeat_bin, tmp_path):  # noqa: F811
    """64 KiB lines with Filebeat's defaults: windows of 2048 events are 128 MiB of JSON."""
    n, size = 3000, 64 * 1024
    logs, lines = setup_logs(tmp_path)
    for first in range(0, n, 500):
        lines.write(first, 500, size)
    a = new_agg(start_agg, tmp_path, "agg")
    fb = start_filebeat(procs, filebeat_bin, tmp_path, logs, [f"127.0.0.1:{a.port}"])
    wait_delivered(lines, [a], fb)
    stop_filebeat(fb)
    check_exactly_once(lines, [a.arrivals])

"""Shared fixtures for the end-to-end tests: they run the real sluice binaries on
127.0.0.1 with OS-chosen ports, wait on conditions with deadlines (never a
fixed sleep that hopes), and stop every process they start by its PID."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build"))
SHIPPER = os.path.join(BUILD, "sluice-shipper")
AGGREGATOR = os.path.join(BUILD, "sluice-aggregator")

# "@2026-12-31 23:59:59": the wall clock the daemons start at (libfaketime).
FAKETIME = os.environ.get("SLUICE_TEST_FAKETIME")
FAKETIME_LIB = os.environ.get("SLUICE_TEST_FAKETIME_LIB",
                              "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

# Sanitized binaries are slower, and CI machines are loaded: deadlines are generous.
DEADLINE = float(os.environ.get("SLUICE_TEST_DEADLINE", "60"))


_handed_out = set()


def free_port():
    """A port the OS just handed out (bound and released), and never one this
    process was given before: the OS may hand the same number to two calls in a
    row, and two servers of one test (an aggregator's metrics and a shipper's)
    would then clash."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no port the OS handed out was new")


def wait_for(cond, timeout=DEADLINE, interval=0.05, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """{'name{labels}': value} from Prometheus text, labels as written."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out


def read_ndjson(path):
    if not os.path.exists(path):
        return []
    events = []
    with open(path, "rb") as f:
        data = f.read()
    # A line still being written has no newline yet: it is read next time.
    for line in data[:data.rfind(b"\n") + 1].split(b"\n"):
        if line:
            events.append(json.loads(line))
    return events


class Proc:
    """A daemon under test: started with its stderr captured to a file."""

    def __init__(self, argv, logpath, env=None):
        self.argv = argv
        self.logpath = logpath
        self.log = open(logpath, "ab")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
        if env:
            e.update(env)
        if FAKETIME:
            # tests/datesweep: the daemons (not the test itself) run on a faked wall
            # clock; monotonic time stays real, so deadlines hold.
            e.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=FAKETIME, FAKETIME_DONT_FAKE_MONOTONIC="1",
                     TZ="UTC", ASAN_OPTIONS=e["ASAN_OPTIONS"] + ":verify_asan_link_order=0")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def send(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=DEADLINE):
        """Stops by PID; returns the exit code. SIGKILL if it does not stop in time."""
        if self.alive():
            os.kill(self.pid, sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self.log.close()
        return rc

    def kill9(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.p.wait()
        self.log.close()


@pytest.fixture
def procs():
    """Every process a test starts, stopped at the end whatever happens."""
    started = []

    def start(argv, logpath, env=None):
        p = Proc(argv, logpath, env)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.alive():
            p.stop(signal.SIGKILL)


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def metrics_of(port):
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return parse_metrics(body)


def wait_port(port, proc=None, timeout=DEADLINE):
    """Waits until something accepts on 127.0.0.1:port (and the process is alive)."""

    def up():
        if proc is not None and not proc.alive():
            raise AssertionError(f"process exited early:\n{proc.logtext()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(up, timeout, what=f"port {port}")


def utc_days(t0, t1, fmt="%Y.%m.%d"):
    """The UTC day names (strftime fmt) of every instant in [t0, t1]: what a name
    taken from the clock while a test ran may be, even across midnight."""
    days, t = set(), t0
    while t < t1:
        days.add(time.strftime(fmt, time.gmtime(t)))
        t += 3600
    days.add(time.strftime(fmt, time.gmtime(t1)))
    return days

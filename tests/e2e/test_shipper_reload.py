"""SIGHUP on the shipper while it ships: an unchanged output section keeps the
connections and the windows in flight, so nothing is sent twice however many
reloads come; a changed output (another host list) reconnects and still
delivers every line (at least once: resent windows may duplicate, none lost).
Input changes apply either way."""

import collections
import signal

from conftest import AGGREGATOR, SHIPPER, free_port, metrics_of, read_ndjson, wait_for, wait_port
from conftest import write_config
from stack import append_lines

RELOADED = "reload: configuration from"


class Aggregator:
    def __init__(self, procs, tmp_path, name):
        self.port, self.mport = free_port(), free_port()
        self.out = tmp_path / f"{name}.ndjson"
        self.cfg = write_config(tmp_path / f"{name}.yml", f"""
input: {{listen: "127.0.0.1:{self.port}"}}
outputs: [{{file: {{path: "{self.out}"}}}}]
metrics: {{listen: "127.0.0.1:{self.mport}"}}
""")
        self.proc = procs([AGGREGATOR, "-c", str(self.cfg)], str(tmp_path / f"{name}.log"))
        wait_port(self.port, self.proc)

    def messages(self):
        return [e["message"] for e in read_ndjson(self.out)]


class Shipper:
    def __init__(self, procs, tmp_path, ports):
        self.tmp, self.mport = tmp_path, free_port()
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.cfg = tmp_path / "shipper.yml"
        self.configure(ports)
        self.proc = procs([SHIPPER, "-c", str(self.cfg)], str(tmp_path / "shipper.log"))
        wait_port(self.mport, self.proc)

    def configure(self, ports, globs=("*.log",)):
        paths = ", ".join(f'"{self.logs}/{g}"' for g in globs)
        hosts = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
        write_config(self.cfg, f"""
inputs:
  - paths: [{paths}]
    start_position: beginning
output:
  hosts: [{hosts}]
  bulk_max_events: 50
  flush_interval: 20ms
  pipelining: 4
  timeout: 5s
  backoff: {{init: 100ms, max: 500ms}}
registry: {{path: "{self.tmp}/registry", flush: 100ms}}
metrics: {{listen: "127.0.0.1:{self.mport}"}}
""")

    def reloads(self):
        return self.proc.logtext().count(RELOADED)

    def hup(self):
        """SIGHUP, then waits for the reload's log line (not a blind sleep)."""
        n = self.reloads()
        self.proc.send(signal.SIGHUP)
        wait_for(lambda: self.reloads() == n + 1, what=f"reload {n + 1}")
        assert self.proc.alive()

    def acked(self):
        return metrics_of(self.mport).get("sluice_shipper_events_acked_total", 0)


def dups(messages):
    return {m: c for m, c in collections.Counter(messages).items() if c > 1}


def test_sighup_with_unchanged_output_sends_nothing_twice(tmp_path, procs):
    agg = Aggregator(procs, tmp_path, "agg")
    ship = Shipper(procs, tmp_path, [agg.port])
    want = []
    # A continuous stream: every HUP lands while the lines just appended are being
    # read, batched and sent (windows in flight, ACKs pending).
    for r in range(50):
        lines = [f"r{r} line {i}" for i in range(400)]
        append_lines(ship.logs / "app.log", lines)
        want += lines
        ship.hup()
    wait_for(lambda: set(want) <= set(agg.messages()), what="every line at the aggregator")
    wait_for(lambda: ship.acked() == len(want), what="every event ACKed")
    got = agg.messages()
    assert not dups(got), f"{len(got) - len(set(got))} duplicates, e.g. {list(dups(got))[:5]}"
    assert len(got) == len(want)
    log = ship.proc.logtext()
    assert log.count("output unchanged: connections kept") == 50
    assert "unACKed events will be resent" not in log
    m = metrics_of(ship.mport)
    assert m[f'sluice_shipper_connection_errors_total{{host="127.0.0.1:{agg.port}"}}'] == 0

    # An input change still applies on a reload that keeps the output.
    ship.configure([agg.port], globs=("*.log", "*.txt"))
    ship.hup()
    more = [f"txt {i}" for i in range(300)]
    append_lines(ship.logs / "other.txt", more)
    want += more
    wait_for(lambda: ship.acked() == len(want), what="the new input's lines ACKed")
    got = agg.messages()
    assert sorted(got) == sorted(want)


def test_sighup_with_changed_hosts_reconnects_and_loses_nothing(tmp_path, procs):
    a, b = Aggregator(procs, tmp_path, "a"), Aggregator(procs, tmp_path, "b")
    ship = Shipper(procs, tmp_path, [a.port])
    want = []

    def stream(tag, n=400):
        lines = [f"{tag} line {i}" for i in range(n)]
        append_lines(ship.logs / "app.log", lines)
        want.extend(lines)

    for r in range(10):
        stream(f"a{r}")
        ship.hup()  # unchanged: kept
    # Switch to another host list mid-stream, windows in flight.
    stream("switch")
    ship.configure([b.port])
    ship.hup()
    assert "output rebuilt" in ship.proc.logtext()
    wait_for(lambda: metrics_of(ship.mport).get(
        f'sluice_shipper_connection_up{{host="127.0.0.1:{b.port}"}}') == 1, what="b connected")
    for r in range(10):
        stream(f"b{r}")
        # and back and forth: every change rebuilds, every line still arrives
        ship.configure([a.port, b.port] if r % 2 == 0 else [b.port])
        ship.hup()
    stream("tail")
    union = lambda: a.messages() + b.messages()  # noqa: E731
    wait_for(lambda: set(want) <= set(union()), what="every line at a or b")
    wait_for(lambda: ship.acked() >= len(want), what="every event ACKed")
    got = union()
    assert set(got) == set(want)  # none lost, nothing invented; duplicates allowed
    assert len(b.messages()) > 0
    assert ship.proc.logtext().count("output rebuilt") == 11

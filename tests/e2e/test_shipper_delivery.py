"""Delivery across several aggregators: load balancing by weight, failover
when one dies mid-stream, backup hosts used only while every primary is down,
and pipelined windows. The union of what the aggregators wrote must hold every
line; duplicates are allowed only for windows in flight on a killed connection."""


import pytest

from conftest import AGGREGATOR, SHIPPER, free_port, metrics_of, read_ndjson, wait_for, wait_port
from conftest import write_config
from stack import Stack, append_lines
from ljclient import zstandard


class Aggregator:
    def __init__(self, procs, tmp_path, name):
        self.port, self.mport = free_port(), free_port()
        self.out = tmp_path / f"{name}.ndjson"
        self.cfg = write_config(tmp_path / f"{name}.yml", f"""
input: {{listen: "127.0.0.1:{self.port}"}}
outputs: [{{file: {{path: "{self.out}"}}}}]
metrics: {{listen: "127.0.0.1:{self.mport}"}}
""")
        self.procs, self.log = procs, str(tmp_path / f"{name}.log")
        self.proc = None

    def start(self):
        self.proc = self.procs([AGGREGATOR, "-c", str(self.cfg)], self.log)
        wait_port(self.port, self.proc)
        return self

    def events(self):
        return read_ndjson(self.out)


def start_shipper(procs, tmp_path, hosts_yaml, extra=""):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    mport = free_port()
    cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - paths: ["{logs}/*.log"]
    start_position: beginning
output:
  hosts: {hosts_yaml}
  bulk_max_events: 100
  flush_interval: 50ms
  timeout: 5s
  backoff: {{init: 100ms, max: 500ms}}
{extra}
registry: {{path: "{tmp_path}/registry", flush: 100ms}}
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    p = procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_port(mport, p)
    return p, mport, logs


def union(aggs):
    got = []
    for a in aggs:
        got += [e["message"] for e in a.events()]
    return got


def test_loadbalance_by_weight_and_failover_when_one_dies(tmp_path, procs):
    aggs = [Aggregator(procs, tmp_path, f"agg{i}").start() for i in range(3)]
    hosts = ("[" + ", ".join(f'{{host: "127.0.0.1:{a.port}", weight: {w}}}'
                             for a, w in zip(aggs, (1, 1, 2))) + "]")
    # Enough window slots that every host can always take one: then the smooth
    # weighted round robin alone decides, and it is exact (pattern c a b c ...).
    ship, mport, logs = start_shipper(procs, tmp_path, hosts, extra="  pipelining: 16")
    for a in aggs:
        wait_for(lambda a=a: metrics_of(mport).get(
            f'sluice_shipper_connection_up{{host="127.0.0.1:{a.port}"}}') == 1, what="all up")
    n1 = 800  # few windows: no host ever has 16 in flight, so none is skipped
    append_lines(logs / "app.log", [f"first {i}" for i in range(n1)])
    wait_for(lambda: len(set(union(aggs))) >= n1, what="first part everywhere")
    counts = [len(a.events()) for a in aggs]
    windows = [metrics_of(a.mport)["sluice_aggregator_windows_total"] for a in aggs]
    assert all(c > 0 for c in counts), counts
    # weight 2 gets twice the windows of weight 1 (within one round)
    assert abs(windows[2] - 2 * windows[0]) <= 2 and abs(windows[0] - windows[1]) <= 1, windows
    aggs[1].proc.kill9()
    n2 = 4000
    append_lines(logs / "app.log", [f"second {i}" for i in range(n2)])
    want = {f"first {i}" for i in range(n1)} | {f"second {i}" for i in range(n2)}
    wait_for(lambda: want <= set(union(aggs)), what="every line after the kill")
    assert len(aggs[1].events()) == counts[1]  # nothing reached the dead one
    m = metrics_of(mport)
    assert m[f'sluice_shipper_connection_errors_total{{host="127.0.0.1:{aggs[1].port}"}}'] >= 1
    assert m[f'sluice_shipper_connection_up{{host="127.0.0.1:{aggs[1].port}"}}'] == 0
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == n1 + n2,
             what="every event ACKed once")
    got = union(aggs)
    assert len(got) - len(set(got)) <= 2 * 100  # at most the windows in flight on the dead one


def test_backup_host_only_while_every_primary_is_down(tmp_path, procs):
    primary, backup = Aggregator(procs, tmp_path, "primary"), Aggregator(procs, tmp_path, "backup")
    primary.start()
    backup.start()
    hosts = (f'[{{host: "127.0.0.1:{primary.port}"}}, '
             f'{{host: "127.0.0.1:{backup.port}", backup: true}}]')
    ship, mport, logs = start_shipper(procs, tmp_path, hosts)
    append_lines(logs / "app.log", [f"a {i}" for i in range(500)])
    wait_for(lambda: len(primary.events()) == 500, what="primary gets everything")
    assert backup.events() == []
    assert primary.proc.stop() == 0
    append_lines(logs / "app.log", [f"b {i}" for i in range(300)])
    wait_for(lambda: {f"b {i}" for i in range(300)} <= set(union([backup])),
             what="backup takes over")
    primary.start()
    wait_for(lambda: metrics_of(mport).get(
        f'sluice_shipper_connection_up{{host="127.0.0.1:{primary.port}"}}') == 1,
        what="primary back")
    before = len(backup.events())
    append_lines(logs / "app.log", [f"c {i}" for i in range(200)])
    wait_for(lambda: {f"c {i}" for i in range(200)} <= set(union([primary])),
             what="primary again")
    assert len(backup.events()) == before


def test_failover_mode_sends_to_the_first_live_host(tmp_path, procs):
    a, b = Aggregator(procs, tmp_path, "a").start(), Aggregator(procs, tmp_path, "b").start()
    hosts = f'["127.0.0.1:{a.port}", "127.0.0.1:{b.port}"]'
    ship, mport, logs = start_shipper(procs, tmp_path, hosts, extra="  loadbalance: false")
    append_lines(logs / "app.log", [f"x {i}" for i in range(300)])
    wait_for(lambda: len(a.events()) == 300, what="all on the first host")
    assert b.events() == []
    assert a.proc.stop() == 0
    append_lines(logs / "app.log", [f"y {i}" for i in range(100)])
    wait_for(lambda: len(b.events()) == 100, what="all on the second host")


def test_ack_timeout_reconnects_and_resends(tmp_path, procs):
    """A server that never ACKs: after `timeout` the shipper reconnects elsewhere."""
    import socket
    import threading
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = silent.accept()
                held.append(c)  # read nothing, ACK nothing
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    good = Aggregator(procs, tmp_path, "good")
    hosts = (f'[{{host: "127.0.0.1:{silent.getsockname()[1]}"}}, '
             f'{{host: "127.0.0.1:{good.port}", backup: true}}]')
    try:
        ship, mport, logs = start_shipper(procs, tmp_path, hosts, extra="  loadbalance: false")
        append_lines(logs / "app.log", [f"t {i}" for i in range(50)])
        wait_for(lambda: metrics_of(mport)["sluice_shipper_events_sent_total"] >= 50,
                 what="sent to the silent host")
        # silent host is "up": backups stay unused until it times out and goes down
        good.start()
        wait_for(lambda: len(good.events()) == 50, timeout=60, what="resent to the backup")
        assert "no ACK within the timeout" in ship.logtext()
    finally:
        stop.set()
        for c in held:
            c.close()
        silent.close()


class FakePartialAckServer:
    """A FAKE Lumberjack server, for the one fault real servers do not produce on
    demand: it ACKs only part of the first window, sends a keepalive ACK 0, then
    drops the connection. Later connections are served normally (full ACKs).
    It decodes frames with the project's Python client helpers."""

    def __init__(self, partial):
        import socket
        import threading
        self.partial = partial
        self.windows = []          # per window: list of event messages received
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.first = True
        threading.Thread(target=self.serve, daemon=True).start()

    @staticmethod
    def read_exact(c, n):
        b = b""
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def read_window(self, c):
        import json
        import struct
        import zlib
        hdr = self.read_exact(c, 6)
        assert hdr[1:2] == b"W"
        n = struct.unpack(">I", hdr[2:])[0]
        kind = self.read_exact(c, 2)
        if kind[1:2] == b"C":
            body = zlib.decompress(self.read_exact(c, struct.unpack(">I", self.read_exact(c, 4))[0]))
        elif kind[1:2] == b"Z":
            packed = self.read_exact(c, struct.unpack(">I", self.read_exact(c, 4))[0])
            body = zstandard.ZstdDecompressor().decompress(packed)
        elif kind[1:2] == b"J":  # compression: none, bare frames
            body = b""
            for i in range(n):
                head = kind if i == 0 else self.read_exact(c, 2)
                seq_len = self.read_exact(c, 8)
                body += head + seq_len + self.read_exact(c, struct.unpack(">I", seq_len[4:])[0])
        else:
            raise AssertionError(f"unexpected frame {kind!r}")
        msgs, off = [], 0
        while off < len(body):
            seq, ln = struct.unpack(">II", body[off + 2:off + 10])
            assert seq == len(msgs) + 1, f"event {len(msgs)} of the window numbered {seq}"
            msgs.append(json.loads(body[off + 10:off + 10 + ln])["message"])
            off += 10 + ln
        assert len(msgs) == n
        return msgs

    def serve(self):
        import struct
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                while True:
                    msgs = self.read_window(c)
                    self.windows.append(msgs)
                    if self.first:
                        self.first = False
                        c.sendall(b"2A" + struct.pack(">I", 0))            # keepalive
                        c.sendall(b"2A" + struct.pack(">I", self.partial))  # partial ACK
                        c.close()
                        break
                    c.sendall(b"2A" + struct.pack(">I", len(msgs)))
            except (EOFError, OSError):
                c.close()


@pytest.mark.parametrize("compression", ["zlib", "zstd", "none"])
def test_partial_ack_resends_only_the_unacked_tail(tmp_path, procs, compression):
    """zlib and zstd windows are packed when sealed (docs/shipper.md): the resent tail
    is unpacked, numbered from 1 again and compressed anew."""
    if compression == "zstd" and zstandard is None:
        pytest.skip("python zstandard not installed")
    fake = FakePartialAckServer(partial=30)
    (tmp_path / "logs").mkdir()
    # Written before the shipper starts, so the first window holds all 100 lines.
    append_lines(tmp_path / "logs" / "app.log", [f"p {i}" for i in range(100)])
    ship, mport, logs = start_shipper(procs, tmp_path, f'["127.0.0.1:{fake.port}"]',
                                      extra=f"  compression: {compression}")
    wait_for(lambda: sum(len(w) for w in fake.windows) >= 170, what="resent tail")
    first, second = fake.windows[0], fake.windows[1]
    assert first == [f"p {i}" for i in range(100)]
    assert second == [f"p {i}" for i in range(30, 100)]  # only the unACKed 70, renumbered
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 100,
             what="all ACKed")
    assert metrics_of(mport)["sluice_shipper_events_sent_total"] == 170


def test_kill9_before_the_first_registry_flush_with_start_position_end(tmp_path, procs):
    """start_position: end skips what a file held before the shipper first saw it. A file
    it saw but never saved must not look new after a crash: the lines written since
    (here while the aggregator is down, so none was shipped) would be skipped too. The
    registry is written as soon as such a file is found, not at the next registry.flush."""
    s = Stack(tmp_path, procs, start_position="end")
    s.ship_cfg.write_text(s.ship_cfg.read_text().replace("flush: 100ms", "flush: 1h"))
    log = s.logs / "a.log"
    append_lines(log, [f"old {i}" for i in range(1000)])
    s.start_shipper()
    wait_for(lambda: "harvesting" in s.shipper.logtext(), what="the file harvested")
    new = [f"new {i}" for i in range(3000)]
    append_lines(log, new)
    wait_for(lambda: s.ship_metric("sluice_shipper_lines_read_total") == 3000,
             what="the new lines read")
    s.shipper.kill9()
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(3000)
    assert sorted(e["message"] for e in events) == sorted(new)
    s.stop_all()

"""The shipper's /healthz against its contract (docs/operations.md): 503 once an
event has waited for its ACK longer than metrics.unhealthy_after, counted from
when the oldest such event was read, so it also fires when no aggregator was
ever reachable; 200 again once the ACKs come; and never merely because a window
is in flight after a quiet spell longer than unhealthy_after."""

import json
import re
import socket
import struct
import threading
import time

from conftest import (AGGREGATOR, SHIPPER, free_port, http_get, metrics_of, read_ndjson,
                      wait_for, wait_port, write_config)
from stack import append_lines

DEADLINE_S = 60
OK = (200, "ok\n")
UNHEALTHY = re.compile(r"the oldest unACKed event was read (\d+) ms ago "
                       r"\(unhealthy_after (\d+) ms\); (\d+) events queued\n")


def start_shipper(procs, tmp_path, agg_port, unhealthy_after, compression="zstd"):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    mport = free_port()
    cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - paths: ["{logs}/*.log"]
    start_position: beginning
output:
  hosts: ["127.0.0.1:{agg_port}"]
  compression: {compression}
  flush_interval: 50ms
  timeout: 30s
  backoff: {{init: 100ms, max: 200ms}}
registry: {{path: "{tmp_path}/registry", flush: 100ms}}
metrics: {{listen: "127.0.0.1:{mport}", unhealthy_after: {unhealthy_after}}}
""")
    p = procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_port(mport, p)
    return p, mport, logs


def version():
    """What `sluice-shipper -V` prints, e.g. "sluice-shipper 0.1.0" -> "0.1.0"."""
    import subprocess
    out = subprocess.run([SHIPPER, "-V"], capture_output=True, text=True, check=True).stdout
    return out.split()[-1]


def healthz(mport):
    return http_get(f"http://127.0.0.1:{mport}/healthz")


def test_never_reachable_aggregator_is_503_and_acks_make_it_200(tmp_path, procs):
    agg_port = free_port()  # nothing listens there yet: every connect is refused
    ship, mport, logs = start_shipper(procs, tmp_path, agg_port, "1s")
    # Nothing waiting: healthy, reachable aggregator or not.
    assert healthz(mport) == OK
    append_lines(logs / "app.log", [f"waiting-{i}" for i in range(100)])
    wait_for(lambda: metrics_of(mport)["sluice_shipper_queue_events"] == 100,
             what="100 events queued")

    status, body = wait_for(lambda: (r := healthz(mport))[0] == 503 and r, what="/healthz 503")
    m = UNHEALTHY.fullmatch(body)
    assert m, body
    assert int(m.group(1)) > 1000 and m.group(2) == "1000" and m.group(3) == "100"
    sm = metrics_of(mport)
    assert sm["sluice_shipper_events_acked_total"] == 0
    # What an operator reads first: never ACKed, how full the queue may get, which build.
    assert sm["sluice_shipper_last_ack_timestamp_seconds"] == 0
    assert sm["sluice_shipper_queue_capacity_events"] == 4096  # queue.max_events default
    assert sm['sluice_shipper_build_info{version="%s"}' % version()] == 1

    # The aggregator comes up on the address the shipper keeps retrying.
    out = tmp_path / "events.ndjson"
    agg_mport = free_port()
    agg_cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{agg_port}"}}
outputs: [{{file: {{path: "{out}"}}}}]
metrics: {{listen: "127.0.0.1:{agg_mport}"}}
""")
    agg = procs([AGGREGATOR, "-c", str(agg_cfg)], str(tmp_path / "aggregator.log"))
    wait_port(agg_port, agg)
    t0 = time.time()
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 100,
             what="100 events ACKed")
    t1 = time.time()
    last = metrics_of(mport)["sluice_shipper_last_ack_timestamp_seconds"]
    assert t0 - 1 <= last <= t1 + 1, (t0, last, t1)
    am = metrics_of(agg_mport)
    assert t0 - 1 <= am["sluice_aggregator_last_ack_timestamp_seconds"] <= t1 + 1
    assert am['sluice_aggregator_build_info{version="%s"}' % version()] == 1
    assert healthz(mport) == OK
    assert sorted(e["message"] for e in read_ndjson(out)) == sorted(
        f"waiting-{i}" for i in range(100))
    assert metrics_of(mport)["sluice_shipper_queue_events"] == 0
    assert ship.stop() == 0
    assert agg.stop() == 0


class HeldAcks:
    """A Lumberjack v2 server for a shipper with `compression: none` that ACKs a
    window only once the test allows it (allow()), so a window can be held in
    flight for as long as a check needs."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.windows = []            # each window's events, as JSON text
        self.permits = threading.Semaphore(0)
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def allow(self, n=1):
        for _ in range(n):
            self.permits.release()

    def stop(self):
        self.stopping = True
        self.listener.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""

        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        with conn:
            try:
                while True:
                    head = need(6)
                    assert head[:2] == b"2W", head
                    count = struct.unpack(">I", head[2:])[0]
                    events = []
                    for _ in range(count):
                        hdr = need(10)
                        assert hdr[:2] == b"2J", hdr
                        events.append(need(struct.unpack(">I", hdr[6:])[0]).decode())
                    self.windows.append(events)
                    while not self.permits.acquire(timeout=0.1):
                        if self.stopping:
                            return
                    conn.sendall(b"2A" + struct.pack(">I", count))
            except (ConnectionError, OSError):
                return


def test_window_in_flight_after_a_quiet_spell_is_healthy(tmp_path, procs):
    srv = HeldAcks()
    try:
        ship, mport, logs = start_shipper(procs, tmp_path, srv.port, "2s", compression="none")
        log = logs / "app.log"
        srv.allow()
        append_lines(log, ["first"])
        wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 1,
                 what="first line ACKed")
        # Quiet for longer than unhealthy_after: the last ACK is now older than it.
        # (Time passing is the condition under test, so this wait is a sleep.)
        time.sleep(3)
        assert healthz(mport) == OK

        append_lines(log, ["second"])
        wait_for(lambda: len(srv.windows) == 2, what="the second window at the aggregator")
        # Its ACK is held: for 1 s the window is in flight, its event read well
        # within unhealthy_after (2 s). Every answer meanwhile must be 200.
        answers = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            answers.append(healthz(mport))
            time.sleep(0.05)
        assert len(answers) >= 5 and set(answers) == {OK}, answers
        srv.allow()
        wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 2,
                 what="second line ACKed")
        assert healthz(mport) == OK
        assert [[json.loads(e)["message"] for e in w] for w in srv.windows] == [["first"], ["second"]]
        assert ship.stop() == 0
    finally:
        srv.stop()


def test_window_held_past_unhealthy_after_is_503_from_the_read(tmp_path, procs):
    srv = HeldAcks()
    try:
        ship, mport, logs = start_shipper(procs, tmp_path, srv.port, "1s", compression="none")
        written = time.monotonic()
        append_lines(logs / "app.log", ["stuck"])
        wait_for(lambda: len(srv.windows) == 1, what="the window at the aggregator")
        status, body = wait_for(lambda: (r := healthz(mport))[0] == 503 and r,
                                what="/healthz 503")
        # Not before unhealthy_after has passed since the line was written (the
        # shipper read it after that; 10 ms of slack for clock granularity).
        assert time.monotonic() - written >= 1.0 - 0.01
        m = UNHEALTHY.fullmatch(body)
        assert m and int(m.group(1)) > 1000 and m.group(2) == "1000" and m.group(3) == "1", body
        srv.allow()
        wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 1,
                 what="the held window ACKed")
        assert healthz(mport) == OK
        assert ship.stop() == 0
    finally:
        srv.stop()


def test_an_address_that_is_not_a_lumberjack_server_says_so(tmp_path, procs):
    """A fake server, on purpose: what answers when `hosts:` points at an HTTP port. The
    shipper names the mistake with the bytes it got, counts the error, and keeps retrying
    without ACKing anything."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def http_answers():
        srv.settimeout(DEADLINE_S)
        try:
            while True:
                c, _ = srv.accept()
                c.recv(65536)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                c.close()
        except OSError:
            pass

    threading.Thread(target=http_answers, daemon=True).start()
    ship, mport, logs = start_shipper(procs, tmp_path, port, "30s", compression="none")
    append_lines(logs / "app.log", ["one line"])
    wait_for(lambda: 'got "HTTP/1.1 400 Bad Request"' in ship.logtext(),
             what="the log naming what answered")
    assert "not a Lumberjack server? expected an ACK frame" in ship.logtext()
    m = metrics_of(mport)
    assert m['sluice_shipper_connection_errors_total{host="127.0.0.1:%d"}' % port] >= 1
    assert m["sluice_shipper_events_acked_total"] == 0
    assert ship.stop() == 0
    srv.close()


def test_an_idle_connection_the_aggregator_closes_is_not_an_error(tmp_path, procs):
    """The aggregator lets an idle client go after client_inactivity_timeout; the shipper
    reconnects quietly: no warning, no connection error counted, and the next lines flow."""
    agg_port, agg_mport = free_port(), free_port()
    out = tmp_path / "events.ndjson"
    agg_cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{agg_port}", client_inactivity_timeout: 1s}}
outputs: [{{file: {{path: "{out}"}}}}]
metrics: {{listen: "127.0.0.1:{agg_mport}"}}
""")
    agg = procs([AGGREGATOR, "-c", str(agg_cfg)], str(tmp_path / "aggregator.log"))
    wait_port(agg_port, agg)
    ship, mport, logs = start_shipper(procs, tmp_path, agg_port, "30s")
    append_lines(logs / "app.log", ["before the idle spell"])
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 1, what="1 ACK")
    # Idle: the aggregator closes the connection (at least twice over this wait).
    wait_for(lambda: agg.logtext().count("(client_inactivity_timeout); closing") >= 2,
             what="the aggregator closing the idle connection twice")
    append_lines(logs / "app.log", ["after the idle spell"])
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 2, what="2 ACKs")
    key = 'sluice_shipper_connection_errors_total{host="127.0.0.1:%d"}' % agg_port
    assert metrics_of(mport).get(key, 0) == 0, ship.logtext()
    assert "closed by the aggregator" not in ship.logtext()
    assert [e["message"] for e in read_ndjson(out)] == ["before the idle spell",
                                                        "after the idle spell"]
    assert ship.stop() == 0
    assert agg.stop() == 0


def test_registry_removed_or_unwritable_is_visible_and_recovers(tmp_path, procs):
    """The registry directory deleted under the running shipper is created again; one it
    cannot write (a file in its place) counts errors and turns /healthz 503 after
    unhealthy_after, and all is well again once it can write."""
    import shutil
    agg_port, agg_mport = free_port(), free_port()
    out = tmp_path / "events.ndjson"
    agg_cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{agg_port}"}}
outputs: [{{file: {{path: "{out}"}}}}]
metrics: {{listen: "127.0.0.1:{agg_mport}"}}
""")
    agg = procs([AGGREGATOR, "-c", str(agg_cfg)], str(tmp_path / "aggregator.log"))
    wait_port(agg_port, agg)
    ship, mport, logs = start_shipper(procs, tmp_path, agg_port, "1s")
    reg = tmp_path / "registry"
    line1 = "first line"
    append_lines(logs / "app.log", [line1])
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 1, what="1 ACK")

    def saved_offset():
        try:
            entries = json.loads((reg / "registry.json").read_text())["entries"]
        except (OSError, ValueError, KeyError):
            return None
        return entries[0]["offset"] if entries else None

    wait_for(lambda: saved_offset() == len(line1) + 1, what="offset saved")
    shutil.rmtree(reg)
    append_lines(logs / "app.log", ["second"])
    wait_for(lambda: saved_offset() == len(line1) + 1 + len("second") + 1,
             what="the registry written again in a recreated directory")
    assert "was removed; created it again" in ship.logtext()

    shutil.rmtree(reg)
    reg.write_text("a file where the registry directory was\n")
    errors0 = metrics_of(mport)['sluice_shipper_registry_writes_total{result="error"}']
    append_lines(logs / "app.log", ["third"])
    wait_for(lambda: metrics_of(mport)['sluice_shipper_registry_writes_total{result="error"}']
             > errors0, what="failed writes counted")
    status, body = wait_for(lambda: (r := healthz(mport))[0] == 503 and r, what="/healthz 503")
    assert body.startswith("registry writes have failed for "), body
    reg.unlink()
    wait_for(lambda: healthz(mport) == OK, what="/healthz 200 once it can write")
    assert saved_offset() == len(line1) + 1 + len("second") + 1 + len("third") + 1
    assert metrics_of(mport)["sluice_shipper_registry_last_write_timestamp_seconds"] > 0
    assert ship.stop() == 0
    assert agg.stop() == 0


def test_a_file_it_may_not_open_is_counted_by_reason(tmp_path, procs):
    """Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (setpriv) meets a mode-000 file
    owned by someone else: EACCES, counted as reason="permission" on each attempt, while
    the readable file next to it is harvested."""
    import os
    import pwd
    import shutil
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        import pytest
        pytest.skip("needs root and setpriv to make a permission error root cannot bypass")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "ok.log").write_text("readable\n")
    locked = logs / "locked.log"
    locked.write_text("not for us\n")
    os.chown(locked, pwd.getpwnam("nobody").pw_uid, -1)
    os.chmod(locked, 0)
    mport = free_port()
    cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - paths: ["{logs}/*.log"]
    start_position: beginning
    scan_frequency: 200ms
output:
  hosts: ["127.0.0.1:{free_port()}"]
  backoff: {{init: 100ms, max: 200ms}}
registry: {{path: "{tmp_path}/registry", flush: 100ms}}
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    ship = procs(["setpriv", "--bounding-set=-dac_override,-dac_read_search", SHIPPER, "-c",
                  str(cfg)], str(tmp_path / "shipper.log"))
    wait_port(mport, ship)
    key = 'sluice_shipper_file_open_errors_total{reason="permission"}'
    wait_for(lambda: metrics_of(mport).get(key, 0) >= 2, what="EACCES counted on two scans")
    m = metrics_of(mport)
    assert m['sluice_shipper_file_open_errors_total{reason="other"}'] == 0
    assert m["sluice_shipper_files_open"] == 1
    assert "cannot open %s: Permission denied" % locked in ship.logtext()
    assert ship.stop() == 0

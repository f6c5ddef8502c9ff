"""End-to-end tests of sluice-aggregator alone: a hand-written Lumberjack v2
client (ljclient.py) talks to the real binary, which writes to a file output.
Each test asserts exact ACK bytes, exact output lines and exact metric values."""

import os
import re
import signal
import socket
import struct
import subprocess

import pytest

from conftest import AGGREGATOR, DEADLINE, metrics_of, read_ndjson, wait_for, write_config
from ljclient import LJClient, encode_window, json_frame, window_frame, zstandard

TS = "2026-11-27T06:00:00.000Z"
OUT_NAME = f"events-{TS[:10].replace('-', '.')}.ndjson"  # what %{+yyyy.MM.dd} makes of TS


def ack(seq, version=b"2"):
    return version + b"A" + struct.pack(">I", seq)


def events(n, prefix="e", **extra):
    return [{"@timestamp": TS, "message": f"{prefix}{i}", "seq": i, **extra} for i in range(n)]


def base_config(tmp_path, input_extra="", output=None, top_extra=""):
    out = output or f'    - file: {{path: "{tmp_path}/out/events-%{{+yyyy.MM.dd}}.ndjson"}}\n'
    return (
        "input:\n"
        "  listen: 127.0.0.1:0\n"
        f"{input_extra}"
        "pipeline:\n"
        "  workers: 1\n"
        "  filters: []\n"
        "outputs:\n"
        f"{out}"
        "metrics:\n"
        "  listen: 127.0.0.1:0\n"
        "shutdown_timeout: 5s\n"
        f"{top_extra}"
    )


class Agg:
    def __init__(self, proc, port, mport, tmp_path):
        self.proc, self.port, self.mport, self.tmp = proc, port, mport, tmp_path

    def out(self, name=OUT_NAME):
        return read_ndjson(os.path.join(self.tmp, "out", name))

    def metrics(self):
        return metrics_of(self.mport)

    def metric(self, key):
        return self.metrics().get(key)


def _start_agg(procs, tmp_path, text, name="agg.yml"):
    cfg = write_config(os.path.join(tmp_path, name), text)
    p = procs([AGGREGATOR, "-c", cfg], os.path.join(tmp_path, "agg.log"))

    def ports():
        if not p.alive():
            raise AssertionError(f"aggregator exited early:\n{p.logtext()}")
        log = p.logtext()
        a = re.search(r"listening on 127\.0\.0\.1:(\d+)", log)
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log)
        return a and m and (int(a.group(1)), int(m.group(1)))

    port, mport = wait_for(ports, what="the aggregator's listening log lines")
    assert port != 0 and mport != 0
    return Agg(p, port, mport, tmp_path)


@pytest.fixture
def start_agg(procs):
    """Starts aggregators; at the end each must still be alive and stop cleanly on
    SIGTERM with exit 0 (under ASan that also means no leak and no UB report)."""
    started = []

    def start(tmp_path, text):
        a = _start_agg(procs, tmp_path, text)
        started.append(a)
        return a

    yield start
    for a in started:
        if a.proc.p.returncode is None:
            assert a.proc.alive(), f"aggregator died:\n{a.proc.logtext()}"
            rc = a.proc.stop(signal.SIGTERM)
            assert rc == 0, f"exit {rc}:\n{a.proc.logtext()}"


@pytest.fixture
def agg(start_agg, tmp_path):
    return start_agg(tmp_path, base_config(tmp_path))


def test_bare_window_is_acked_with_last_seq_and_written(agg):
    sent = events(3)
    c = LJClient(agg.port)
    c.send_window(sent)
    assert c.read_raw(6) == ack(3)
    assert agg.out() == sent
    m = agg.metrics()
    assert m["sluice_aggregator_events_received_total"] == 3
    assert m["sluice_aggregator_events_acked_total"] == 3
    assert m["sluice_aggregator_windows_total"] == 1
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 3
    assert m['sluice_aggregator_output_request_seconds_count{output="file"}'] == 1
    assert m["sluice_aggregator_queue_events"] == 0
    assert m["sluice_aggregator_connections"] == 1
    c.close()
    wait_for(lambda: agg.metric("sluice_aggregator_connections") == 0, what="connection gauge 0")


def test_pipelined_windows_acked_in_order_zlib_and_bare(agg):
    w1, w2, w3 = events(50, "a"), events(2, "b"), events(1, "c")
    c = LJClient(agg.port)
    # All three windows leave before any ACK is read (Filebeat's pipelining).
    c.send(encode_window(w1, "zlib") + encode_window(w2) + encode_window(w3, "zlib"))
    assert c.read_raw(18) == ack(50) + ack(2) + ack(1)
    assert agg.out() == w1 + w2 + w3
    m = agg.metrics()
    assert m["sluice_aggregator_events_received_total"] == 53
    assert m["sluice_aggregator_events_acked_total"] == 53
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 53


@pytest.mark.skipif(zstandard is None, reason="python zstandard not installed")
def test_zstd_window(agg):
    sent = events(20, "z")
    c = LJClient(agg.port)
    c.send_window(sent, compress="zstd")
    assert c.read_raw(6) == ack(20)
    assert agg.out() == sent


def test_ack_carries_last_frame_seq_not_count(agg):
    sent = events(3)
    c = LJClient(agg.port)
    c.send_window(sent, first_seq=5)  # seq 5, 6, 7: Logstash handles seq not starting at 1
    assert c.read_raw(6) == ack(7)
    assert agg.out() == sent


def test_frames_split_at_every_byte(agg):
    sent = events(2)
    c = LJClient(agg.port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in encode_window(sent, "zlib"):
        c.send(bytes([b]))
    assert c.read_raw(6) == ack(2)
    assert agg.out() == sent


def test_empty_window_gets_ack_zero_at_once(agg):
    c = LJClient(agg.port)
    c.send(window_frame(0))
    assert c.read_raw(6) == ack(0)
    sent = events(1)
    c.send_window(sent)
    assert c.read_raw(6) == ack(1)
    assert agg.out() == sent


def test_garbage_closes_only_that_connection(agg):
    good = LJClient(agg.port)
    bad = LJClient(agg.port)
    wait_for(lambda: agg.metric("sluice_aggregator_connections") == 2, what="2 connections")
    bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert bad.wait_closed() == b""  # closed without any ACK
    sent = events(2)
    good.send_window(sent)
    assert good.read_raw(6) == ack(2)
    assert agg.proc.alive()
    m = agg.metrics()
    assert m['sluice_aggregator_protocol_errors_total{reason="invalid_frame"}'] == 1
    assert m["sluice_aggregator_connections"] == 1
    assert agg.out() == sent
    assert "protocol error" in agg.proc.logtext()


def test_invalid_json_closes_without_ack(agg):
    c = LJClient(agg.port)
    c.send(window_frame(2) + json_frame(1, {"@timestamp": TS, "message": "ok"}) +
           json_frame(2, b'{"message": "unterminated'))
    assert c.wait_closed() == b""
    m = agg.metrics()
    assert m['sluice_aggregator_protocol_errors_total{reason="invalid_json"}'] == 1
    assert m["sluice_aggregator_events_acked_total"] == 0
    assert agg.out() == []  # the window never completed: nothing of it is delivered
    # The process keeps serving.
    c2 = LJClient(agg.port)
    c2.send_window(events(1))
    assert c2.read_raw(6) == ack(1)


def test_window_over_max_window_events_is_delivered_in_pieces(start_agg, tmp_path):
    """Logstash accepts any window size (Filebeat's bulk_max_size): sluice hands it to
    the pipeline in pieces of max_window_events and ACKs each piece (partial ACKs)."""
    a = start_agg(tmp_path, base_config(tmp_path, "  max_window_events: 10\n"))
    c = LJClient(a.port)
    sent = events(25, "bare")
    c.send_window(sent)
    assert c.read_raw(18) == ack(10) + ack(20) + ack(25)
    zsent = events(25, "zlib")
    c.send_window(zsent, compress="zlib")
    assert c.read_raw(18) == ack(10) + ack(20) + ack(25)
    assert a.out() == sent + zsent
    m = a.metrics()
    assert m["sluice_aggregator_events_acked_total"] == 50
    assert m.get('sluice_aggregator_protocol_errors_total{reason="window_events"}', 0) == 0


def test_half_closed_client_still_gets_its_ack(agg):
    sent = events(4)
    c = LJClient(agg.port)
    c.send_window(sent, compress="zlib")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.wait_closed() == ack(4)
    assert agg.out() == sent


def test_max_connections_refuses_the_extra_one(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(tmp_path, "  max_connections: 1\n"))
    first = LJClient(a.port)
    wait_for(lambda: a.metric("sluice_aggregator_connections") == 1, what="1 connection")
    second = LJClient(a.port)
    assert second.wait_closed() == b""
    assert a.metric("sluice_aggregator_connections_rejected_total") == 1
    first.send_window(events(1))
    assert first.read_raw(6) == ack(1)


def test_idle_connection_closed_after_client_inactivity_timeout(start_agg, tmp_path):
    a = start_agg(tmp_path,
                  base_config(tmp_path, "  client_inactivity_timeout: 300ms\n"))
    c = LJClient(a.port)
    c.send_window(events(1))
    assert c.read_raw(6) == ack(1)
    assert c.wait_closed(timeout=DEADLINE) == b""
    wait_for(lambda: a.metric("sluice_aggregator_connections") == 0, what="connection closed")


def test_metadata_false_and_field_reference_in_path(start_agg, tmp_path):
    out = (f'    - file: {{path: "{tmp_path}/out/%{{[fields][service]}}/%{{+yyyy}}.ndjson",'
           " metadata: false}\n")
    a = start_agg(tmp_path, base_config(tmp_path, output=out))
    web = {"@timestamp": TS, "@metadata": {"beat": "sluice"}, "message": "w",
           "fields": {"service": "web"}}
    db = {"@timestamp": TS, "@metadata": {"beat": "sluice"}, "message": "d",
          "fields": {"service": "db"}}
    c = LJClient(a.port)
    c.send_window([web, db, web])
    assert c.read_raw(6) == ack(3)
    strip = {k: v for k, v in web.items() if k != "@metadata"}
    assert a.out(f"web/{TS[:4]}.ndjson") == [strip, strip]
    assert a.out(f"db/{TS[:4]}.ndjson") == [{k: v for k, v in db.items() if k != "@metadata"}]


def test_output_failure_is_not_acked_and_connection_closed(start_agg, tmp_path):
    # The output's directory cannot be created (a file is in the way): write fails.
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    out = f'    - file: {{path: "{blocker}/x.ndjson"}}\n'
    a = start_agg(tmp_path, base_config(tmp_path, output=out))
    c = LJClient(a.port)
    c.send_window(events(2))
    assert c.wait_closed() == b""
    m = a.metrics()
    assert m['sluice_aggregator_output_events_total{output="file",result="failed"}'] == 2
    assert m["sluice_aggregator_events_acked_total"] == 0
    assert m["sluice_aggregator_queue_events"] == 0


def test_sighup_reload_swaps_outputs_and_rejects_bad_config(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(tmp_path))
    c = LJClient(a.port)
    first = events(1, "before")
    c.send_window(first)
    assert c.read_raw(6) == ack(1)

    cfg = os.path.join(tmp_path, "agg.yml")
    new_out = f'    - file: {{path: "{tmp_path}/out/reloaded.ndjson"}}\n'
    write_config(cfg, base_config(tmp_path, output=new_out))
    a.proc.send(signal.SIGHUP)
    wait_for(lambda: a.metric('sluice_aggregator_reloads_total{result="ok"}') == 1,
             what="reload ok")
    second = events(2, "after")
    c.send_window(second)  # same connection: the new pipeline takes new windows
    assert c.read_raw(6) == ack(2)
    assert a.out("reloaded.ndjson") == second
    assert a.out() == first

    write_config(cfg, base_config(tmp_path, output="    - kafkaa: {}\n"))
    a.proc.send(signal.SIGHUP)
    wait_for(lambda: a.metric('sluice_aggregator_reloads_total{result="failed"}') == 1,
             what="reload failed")
    assert f"{cfg}:7:7: outputs[0]: unknown output 'kafkaa'" in a.proc.logtext()
    third = events(1, "still")
    c.send_window(third)
    assert c.read_raw(6) == ack(1)
    assert a.out("reloaded.ndjson") == second + third


def test_sigterm_exits_zero(agg):
    c = LJClient(agg.port)
    c.send_window(events(2))
    assert c.read_raw(6) == ack(2)
    assert agg.proc.stop(signal.SIGTERM) == 0
    assert c.wait_closed() == b""


def test_listen_port_zero_logs_actual_port(agg):
    with socket.create_connection(("127.0.0.1", agg.port), timeout=5):
        pass
    assert f"listening on 127.0.0.1:{agg.port}" in agg.proc.logtext()
    assert agg.port != 0


def run(args):
    return subprocess.run([AGGREGATOR] + args, capture_output=True, text=True, timeout=DEADLINE)


def test_test_config_on_a_fifo_does_not_hang(tmp_path):
    """-t on a FIFO nobody writes to reads it as empty (exit 2 at once, not a hang);
    with a writer (a shell's <(...)) its text is the configuration; a directory says so."""
    fifo = tmp_path / "agg.fifo"
    os.mkfifo(fifo)
    r = subprocess.run([AGGREGATOR, "-t", "-c", str(fifo)], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert r.returncode == 2 and "the configuration is empty" in r.stderr, r.stderr

    cfg = write_config(os.path.join(tmp_path, "agg.yml"), base_config(tmp_path))
    # A pipe whose writer is there from the start: bash's <(...).
    r = subprocess.run(["bash", "-c", f'exec "{AGGREGATOR}" -t -c <(cat "{cfg}")'],
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([AGGREGATOR, "-t", "-c", str(tmp_path)], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert r.returncode == 2 and "cannot read: Is a directory" in r.stderr, r.stderr


def test_test_config_ok(tmp_path):
    cfg = write_config(os.path.join(tmp_path, "ok.yml"), base_config(tmp_path))
    r = run(["-t", "-c", cfg])
    assert (r.returncode, r.stdout) == (0, "configuration OK\n")


def test_test_config_reports_every_error_with_position(tmp_path):
    cfg = write_config(os.path.join(tmp_path, "bad.yml"), (
        "input:\n"
        "  listen: 127.0.0.1:0\n"
        "  max_conections: 5\n"
        "outputs:\n"
        "  - file: {}\n"
        "  - kafkaa: {brokers: [a]}\n"
        "queue: {type: persisted, max_bytes: 1kb}\n"))
    r = run(["-t", "-c", cfg])
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert (f"{cfg}:3:3: input: unknown option 'max_conections' "
            "(did you mean 'max_connections'?)") in lines
    assert (f"{cfg}:6:5: outputs[1]: unknown output 'kafkaa' (did you mean 'kafka'? outputs: "
            "file, stdout, kafka, elasticsearch)") in lines
    assert f"{cfg}:5:11: outputs[0] (file): option 'path' is required" in lines
    assert f"{cfg}:7:37: queue: option 'max_bytes' must be at least 1mb, got '1kb'" in lines
    assert len(lines) == 4, r.stderr


def test_unreadable_config_exits_2(tmp_path):
    r = run(["-t", "-c", os.path.join(tmp_path, "missing.yml")])
    assert r.returncode == 2
    assert re.search(r"missing\.yml:1:1: .*No such file", r.stderr)


def test_version():
    r = run(["-V"])
    assert (r.returncode, r.stdout) == (0, "sluice-aggregator 0.1.0\n")


def test_cannot_listen_exits_1(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        text = base_config(tmp_path).replace("listen: 127.0.0.1:0\npipeline",
                                             f"listen: 127.0.0.1:{busy}\npipeline")
        cfg = write_config(os.path.join(tmp_path, "busy.yml"), text)
        r = run(["-c", cfg])
        assert r.returncode == 1
        assert "cannot listen" in r.stderr

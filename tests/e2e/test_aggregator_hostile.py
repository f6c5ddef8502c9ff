"""Hostile clients against the real sluice-aggregator (docs/aggregator.md, Bad input and limits):
random bytes, 0xFFFFFFFF lengths, zlib and zstd bombs, invalid and too-deep
JSON, unknown frame types, a slow-loris client and 1000 idle connections -
while a well-behaved client keeps sending windows that must all be ACKed and
written. Each error closes only its own connection, is counted by reason, and
the aggregator's memory stays bounded."""

import os
import random
import resource
import socket
import struct
import threading
import time
import zlib

import pytest

from conftest import BUILD, DEADLINE, wait_for
from ljclient import LJClient, compressed_frame, encode_window, json_frame, window_frame, zstandard
from test_aggregator import TS, base_config, events, start_agg  # noqa: F401 (fixture)

BOMB_BYTES = 1 << 30  # 1 GiB of zeros, compressed
# Under ASan a realloc is malloc + copy + free (old and new buffers both live,
# plus their shadow), so the same bound shows as about twice the RSS.
SANITIZED = "asan" in os.path.basename(os.path.normpath(BUILD))
RSS_LIMIT_KB = int(os.environ.get("SLUICE_TEST_RSS_LIMIT_KB",
                                  str((200 if SANITIZED else 100) * 1024)))


def ack(seq):
    return b"2A" + struct.pack(">I", seq)


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples the aggregator's VmRSS every 10 ms; .peak is the highest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, vm_rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.01)


class GoodClient(threading.Thread):
    """Sends windows of 10 events one after another and checks each ACK."""

    def __init__(self, port, tag):
        super().__init__(daemon=True)
        self.port, self.tag = port, tag
        self.sent, self.errors, self.worst = [], [], 0.0
        self.stop = threading.Event()

    def run(self):
        try:
            c = LJClient(self.port, timeout=DEADLINE)
            n = 0
            while not self.stop.is_set():
                # @timestamp names the output file: a fixed one keeps the name
                # independent of the day (and of midnight during the test).
                batch = [{"@timestamp": TS, "message": f"{self.tag}-{n + i}", "n": n + i}
                         for i in range(10)]
                t0 = time.monotonic()
                c.send_window(batch, compress="zlib" if n % 20 == 0 else None)
                got = c.read_raw(6)
                self.worst = max(self.worst, time.monotonic() - t0)
                if got != ack(10):
                    raise AssertionError(f"unexpected ACK {got!r}")
                self.sent += batch
                n += 10
                time.sleep(0.01)
            c.close()
        except Exception as e:  # reported by the test
            self.errors.append(e)


def bad_conn(port, data):
    """Sends data on a new connection; returns what came back before the server closed."""
    c = LJClient(port, timeout=DEADLINE)
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return c.wait_closed()


_bombs = {}


def zlib_bomb():
    if "zlib" not in _bombs:
        z = zlib.compressobj(1)
        zeros = bytes(1 << 20)
        body = b"".join(z.compress(zeros) for _ in range(BOMB_BYTES >> 20)) + z.flush()
        _bombs["zlib"] = b"2C" + struct.pack(">I", len(body)) + body
    return _bombs["zlib"]


def zstd_bomb(declare_size):
    key = ("zstd", declare_size)
    if key not in _bombs:
        zeros = bytes(1 << 20)
        if declare_size:
            cctx = zstandard.ZstdCompressor(level=1, write_content_size=True)
            body = cctx.compress(bytes(256 << 20))  # declares 256 MiB: refused at once
        else:
            # Streamed: no content size in the header, so the cap is hit while inflating.
            cobj = zstandard.ZstdCompressor(level=1).compressobj()
            body = b"".join(cobj.compress(zeros) for _ in range(BOMB_BYTES >> 20))
            body += cobj.flush()
        _bombs[key] = b"2Z" + struct.pack(">I", len(body)) + body
    return _bombs[key]


def proto_errors(agg, reason):
    return agg.metric(f'sluice_aggregator_protocol_errors_total{{reason="{reason}"}}') or 0


@pytest.fixture
def hostile(start_agg, tmp_path, monkeypatch):
    # ASan keeps freed blocks in a 256 MiB quarantine by default, which would
    # measure ASan rather than sluice: a small one keeps the RSS check meaningful.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get(
        "ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86") + ":quarantine_size_mb=8")
    return start_agg(tmp_path, base_config(tmp_path, "  frame_timeout: 1s\n"))


def test_hostile_inputs_close_only_their_connection(hostile):
    a = hostile
    base_kb = vm_rss_kb(a.proc.pid)
    rss = RssSampler(a.proc.pid)
    rss.start()
    good = GoodClient(a.port, "good")
    good.start()
    expect = {}

    def expect_closed(reason, data, n=1):
        for _ in range(n):
            assert bad_conn(a.port, data) == b"", reason
        expect[reason] = expect.get(reason, 0) + n
        wait_for(lambda: proto_errors(a, reason) == expect[reason], what=f"{reason} counted")

    rng = random.Random(5044)
    # Random garbage; the first byte is never a version byte, so the verdict is certain.
    for _ in range(20):
        junk = bytes([rng.choice([b for b in range(256) if b not in b"12"])])
        expect_closed("invalid_frame", junk + rng.randbytes(rng.randint(1, 8192)))
    expect_closed("invalid_frame", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    expect_closed("invalid_frame", b"2Q" + struct.pack(">I", 1))          # unknown frame type
    expect_closed("invalid_frame", b"3W" + struct.pack(">I", 1))          # unknown version
    expect_closed("invalid_frame", window_frame(1) + b"2C" + struct.pack(">I", 4) + b"junk")
    expect_closed("invalid_frame", window_frame(1) + b"2J" + struct.pack(">II", 1, 0))
    # Huge lengths cost nothing: refused from the header alone.
    # A window of 2^32-1 events is no error in itself (it would come in pieces), but
    # one that never delivers an event is cut off by the frame timeout.
    expect_closed("frame_timeout", b"2W\xff\xff\xff\xff")
    expect_closed("frame_bytes", window_frame(1) + b"2J" + struct.pack(">I", 1) + b"\xff" * 4)
    expect_closed("frame_bytes", window_frame(1) + b"2C\xff\xff\xff\xff")
    expect_closed("frame_bytes", window_frame(1) + b"2Z\xff\xff\xff\xff")
    # Bad JSON and JSON nested past max_json_depth (64).
    expect_closed("invalid_json", window_frame(1) + json_frame(1, b'{"message": "unterminated'))
    expect_closed("invalid_json", window_frame(1) + json_frame(1, b'["not", "an object"]'))
    expect_closed("json_depth", window_frame(1) + json_frame(1, b'{"a":' + b"[" * 100 +
                                                          b"]" * 100 + b"}"))
    expect_closed("unexpected_frame", json_frame(1, {"message": "no window"}))
    # Decompression bombs: 1 GiB of zeros. Inflated a piece at a time, the zeros
    # fail the framing in the first piece: no 1 GiB, no 64 MiB, just a bad frame.
    zlib_bomb()
    if zstandard is not None:
        zstd_bomb(False)
        zstd_bomb(True)
    t0 = time.monotonic()
    expect_closed("invalid_frame", window_frame(1) + zlib_bomb(), n=3)
    if zstandard is not None:
        expect_closed("invalid_frame", window_frame(1) + zstd_bomb(declare_size=False), n=3)
        expect_closed("invalid_frame", window_frame(1) + zstd_bomb(declare_size=True))
    bomb_seconds = time.monotonic() - t0

    assert a.proc.alive()
    good.stop.set()
    good.join(DEADLINE)
    rss.stop.set()
    rss.join()
    assert not good.errors, good.errors
    assert len(good.sent) >= 50
    wait_for(lambda: len(a.out()) == len(good.sent), what="every good event written")
    assert a.out() == good.sent  # in order, nothing lost, nothing from the bad clients
    m = a.metrics()
    for reason, n in expect.items():
        assert m[f'sluice_aggregator_protocol_errors_total{{reason="{reason}"}}'] == n, reason
    assert m["sluice_aggregator_events_acked_total"] == len(good.sent)
    assert m["sluice_aggregator_queue_events"] == 0
    print(f"7 bombs refused in {bomb_seconds:.2f}s")
    assert bomb_seconds < 30, f"bombs took {bomb_seconds:.1f}s"
    # The bound is one inflated piece plus the compressed frame; measured over the
    # idle process so that a sanitizer's own overhead is not counted.
    print(f"VmRSS: {base_kb} kB idle, {rss.peak} kB peak during the bombs")
    assert rss.peak - base_kb < RSS_LIMIT_KB, f"VmRSS grew from {base_kb} to {rss.peak} kB"
    log = a.proc.logtext()
    assert "invalid protocol version 0x00" in log


def test_slow_loris_is_cut_off_by_frame_timeout(hostile):
    a = hostile
    good = LJClient(a.port)
    loris = LJClient(a.port)
    loris.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = encode_window(events(2))
    t0 = time.monotonic()
    closed = False
    for b in data:  # one byte every 100 ms: each resets the inactivity timer, not this one
        try:
            loris.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        good.send_window(events(1, "g"))
        assert good.read_raw(6) == ack(1)
        time.sleep(0.1)
        if time.monotonic() - t0 > 5:
            break
    if not closed:
        assert loris.wait_closed() == b""
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 4, elapsed
    assert proto_errors(a, "frame_timeout") == 1
    # Between windows a connection may stay quiet (client_inactivity_timeout, 60 s, applies).
    time.sleep(1.5)
    good.send_window(events(1, "h"))
    assert good.read_raw(6) == ack(1)
    assert proto_errors(a, "frame_timeout") == 1


def test_thousand_idle_connections_do_not_hurt_a_good_client(hostile):
    a = hostile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", a.port), timeout=DEADLINE))
        wait_for(lambda: a.metric("sluice_aggregator_connections") == 1000,
                 what="1000 connections")
        rss_idle = vm_rss_kb(a.proc.pid)
        c = LJClient(a.port)
        worst = 0.0
        sent = []
        for i in range(50):
            batch = events(20, f"w{i}-")
            t0 = time.monotonic()
            c.send_window(batch, compress="zlib")
            assert c.read_raw(6) == ack(20)
            worst = max(worst, time.monotonic() - t0)
            sent += batch
        assert worst < 1.0, f"slowest ACK {worst:.3f}s with 1000 idle connections"
        assert a.out() == sent
        # Idle connections cost their socket and a small struct, no decoder buffers.
        assert rss_idle < RSS_LIMIT_KB, rss_idle
    finally:
        for s in idle:
            s.close()
    wait_for(lambda: a.metric("sluice_aggregator_connections") == 1, what="idle ones gone")


def test_max_connections_is_counted_as_a_protocol_error(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(tmp_path, "  max_connections: 3\n"))
    keep = [LJClient(a.port) for _ in range(3)]
    wait_for(lambda: a.metric("sluice_aggregator_connections") == 3, what="3 connections")
    for _ in range(2):
        assert LJClient(a.port).wait_closed() == b""
    assert proto_errors(a, "max_connections") == 2
    assert a.metric("sluice_aggregator_connections_rejected_total") == 2
    keep[0].send_window(events(1))
    assert keep[0].read_raw(6) == ack(1)


def test_window_bytes_cut_windows_into_pieces_and_bound_inner_frames(start_agg, tmp_path):
    """max_window_bytes bounds what one piece of a window holds (the window is ACKed
    piece by piece) and what one frame inside a compressed block may inflate to."""
    a = start_agg(tmp_path, base_config(tmp_path, "  max_window_bytes: 4kb\n"))
    big = [{"@timestamp": TS, "message": "x" * 900, "n": i} for i in range(5)]
    c = LJClient(a.port)
    c.send_window(big)  # 957 bytes each: four fit in 4 KiB, the fifth starts a piece
    assert c.read_raw(12) == ack(4) + ack(5)
    c.send_window(big, compress="zlib")
    assert c.read_raw(12) == ack(4) + ack(5)
    # One event larger than 4 KiB on its own is still one (bounded by max_frame_bytes).
    huge = {"@timestamp": TS, "message": "y" * 6000}
    c.send_window([huge])
    assert c.read_raw(6) == ack(1)
    assert a.out() == big + big + [huge]
    # Inside a compressed block, a frame that inflates past 4 KiB is refused.
    assert bad_conn(a.port, encode_window([huge], "zlib")) == b""
    assert proto_errors(a, "inflated_bytes") == 1
    assert proto_errors(a, "window_bytes") == 0


def test_compressed_frame_with_window_frame_inside_is_refused(hostile):
    inner = window_frame(1) + json_frame(1, {"message": "x"})
    assert bad_conn(hostile.port, window_frame(1) + compressed_frame(inner)) == b""
    assert proto_errors(hostile, "invalid_frame") == 1

"""Compressed blocks inflated by the pipeline's workers (docs/architecture.md,
"Windows inflated by the workers"): a window whose events come in a C or Z
block right after its W frame is handed to a worker as the block, and the
block's count decides where the window ends. Every shape a client may send
must come out as the connection's own decoder would have read it: the same
ACKs, byte for byte, the same events in the same order."""

import struct

import pytest

from conftest import DEADLINE
from ljclient import LJClient, compressed_frame, json_frame, window_frame, zstandard
from test_aggregator import TS, ack, base_config, events, start_agg  # noqa: F401 (fixture)

KINDS = ["zlib", pytest.param("zstd", marks=pytest.mark.skipif(
    zstandard is None, reason="python zstandard module not installed"))]


def frames(evs, first_seq=1):
    return b"".join(json_frame(first_seq + i, e) for i, e in enumerate(evs))


def block(evs, kind, first_seq=1):
    return compressed_frame(frames(evs, first_seq), kind)


def proto_errors(agg, reason):
    return agg.metric(f'sluice_aggregator_protocol_errors_total{{reason="{reason}"}}') or 0


def two_workers(tmp_path, input_extra=""):
    """Two workers and slices of 10 events: a window's slices finish out of order."""
    return base_config(tmp_path, input_extra).replace(
        "  workers: 1\n", "  workers: 2\n  batch_size: 10\n")


def acks_until(c, last):
    """ACK sequence numbers read until the one that ends the window (last)."""
    seqs = []
    while not seqs or seqs[-1] != last:
        seqs += [seq for _, seq in c.read_acks(1)]
    return seqs


def handed_off(agg):
    return agg.metric("sluice_aggregator_blocks_worker_inflated_total")


@pytest.mark.parametrize("kind", KINDS)
def test_block_holding_part_of_its_window_continues_on_the_wire(start_agg, tmp_path, kind):
    """W=5, a block of 3, then 2 bare frames. A block a worker inflated is a piece of its
    own (ACK 3, then 5), as pieces cut by max_window_events are; one the I/O thread read
    (the workers had a queue) is not (ACK 5 alone). Either way every event once, in order."""
    a = start_agg(tmp_path, base_config(tmp_path))
    evs = events(5)
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(window_frame(5) + block(evs[:3], kind) + frames(evs[3:], first_seq=4))
    got = acks_until(c, 5)
    workers = handed_off(a)
    assert got == {0: [5], 1: [3, 5]}[workers]
    # Then a window of several blocks and bare frames mixed: a block can go to a worker
    # only while its window has no event yet.
    more = events(7, prefix="m")
    c.send(window_frame(7) + block(more[:2], kind) + block(more[2:4], kind, 3) +
           frames(more[4:5], 5) + block(more[5:], kind, 6))
    got = acks_until(c, 7)
    assert got == {0: [7], 1: [2, 7], 2: [2, 4, 7]}[handed_off(a) - workers]
    c.close()
    assert a.out() == evs + more
    assert a.metric("sluice_aggregator_events_acked_total") == 12


@pytest.mark.parametrize("kind", KINDS)
def test_block_then_a_new_window_before_the_rest(start_agg, tmp_path, kind):
    """W=4 whose block holds 2 events, then a new window: the 2 are delivered and ACKed,
    the missing 2 are forgotten (no ACK 0 for them), the next window goes on."""
    a = start_agg(tmp_path, base_config(tmp_path))
    evs = events(3)
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(window_frame(4) + block(evs[:2], kind) + window_frame(1) + block(evs[2:], kind))
    assert c.read_raw(12) == ack(2) + ack(1)
    c.send(window_frame(1) + frames(evs[:1]))
    assert c.read_raw(6) == ack(1)
    c.close()
    assert a.out() == evs + evs[:1]


@pytest.mark.parametrize("kind", KINDS)
def test_block_with_more_events_than_its_window_is_refused(start_agg, tmp_path, kind):
    """W=2 and a block of 3: the third is a data frame outside any window. The
    connection closes without an ACK, and the next one is served."""
    a = start_agg(tmp_path, base_config(tmp_path))
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(window_frame(2) + block(events(3), kind))
    assert c.wait_closed() == b""
    assert proto_errors(a, "unexpected_frame") == 1
    good = LJClient(a.port, timeout=DEADLINE)
    good.send(window_frame(2) + block(events(2, prefix="g"), kind))
    assert good.read_raw(6) == ack(2)
    good.close()
    assert a.out() == events(2, prefix="g")


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_block_closes_only_its_connection(start_agg, tmp_path, kind):
    """A block that does not inflate (a flipped byte in the middle) is an invalid frame,
    found on a worker: that connection closes without ACK, another goes on."""
    a = start_agg(tmp_path, base_config(tmp_path))
    good = LJClient(a.port, timeout=DEADLINE)
    good.send(window_frame(2) + block(events(2, prefix="a"), kind))
    assert good.read_raw(6) == ack(2)
    bad = bytearray(block(events(50), kind))
    bad[len(bad) // 2] ^= 0xFF
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(window_frame(50) + bytes(bad))
    assert c.wait_closed() == b""
    assert proto_errors(a, "invalid_frame") == 1
    good.send(window_frame(2) + block(events(2, prefix="b"), kind))
    assert good.read_raw(6) == ack(2)
    good.close()
    assert a.out() == events(2, prefix="a") + events(2, prefix="b")


def test_block_past_max_window_bytes_is_read_in_pieces(start_agg, tmp_path):
    """Texts past input.max_window_bytes send the block back to the connection, which
    cuts it in pieces as before; later windows of that client still arrive whole.
    (zlib only: a zstd frame whose window is larger than max_window_bytes is refused
    before any of it is read, test_aggregator_hostile.py.)"""
    kind = "zlib"
    a = start_agg(tmp_path, base_config(tmp_path, "  max_window_bytes: 4kb\n"))
    big = [{"@timestamp": TS, "message": "x" * 900, "n": i} for i in range(5)]
    small = events(3)
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(window_frame(5) + block(big, kind))
    assert c.read_raw(12) == ack(4) + ack(5)
    c.send(window_frame(3) + block(small, kind))
    assert c.read_raw(6) == ack(3)
    c.close()
    assert a.out() == big + small
    assert proto_errors(a, "inflated_bytes") == 0


def test_pipelined_block_windows_keep_their_order_with_two_workers(start_agg, tmp_path):
    """60 windows of 1 to 60 events sent without waiting, in zlib, zstd (when the
    module is there) and bare frames in turn, each cut into slices of 10 for two
    workers: every ACK says its window's size, in order, and the output holds every
    event once, in the order sent."""
    a = start_agg(tmp_path, two_workers(tmp_path, "  max_pending_windows: 64\n"))
    kinds = ["zlib", "zstd", None] if zstandard is not None else ["zlib", None]
    c = LJClient(a.port, timeout=DEADLINE)
    sent, wire = [], b""
    for w in range(60):
        evs = [{"@timestamp": TS, "message": f"w{w}-{i}", "w": w, "i": i} for i in range(w + 1)]
        kind = kinds[w % len(kinds)]
        wire += window_frame(len(evs)) + (block(evs, kind) if kind else frames(evs))
        sent += evs
    c.send(wire)
    assert c.read_acks(60) == [(b"2", w + 1) for w in range(60)]
    c.close()
    out = a.out()
    assert len(out) == len(sent)
    assert [(e["w"], e["i"]) for e in out] == [(e["w"], e["i"]) for e in sent]
    assert a.metric("sluice_aggregator_events_received_total") == len(sent)


def test_v1_data_frames_inside_a_block(start_agg, tmp_path):
    """Version 1 'D' frames (key/value pairs) inside a zlib block become JSON on the worker."""
    a = start_agg(tmp_path, base_config(tmp_path))

    def data_frame(seq, pairs):
        body = b"1D" + struct.pack(">II", seq, len(pairs))
        for k, v in pairs.items():
            body += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return body

    inner = data_frame(1, {"message": "one", "@timestamp": TS}) + \
        data_frame(2, {"message": "two", "@timestamp": TS})
    c = LJClient(a.port, timeout=DEADLINE)
    c.send(b"1W" + struct.pack(">I", 2) + b"1" + compressed_frame(inner, "zlib")[1:])
    assert c.read_raw(6) == b"1A" + struct.pack(">I", 2)
    c.close()
    assert [(e["message"], e["@timestamp"]) for e in a.out()] == [("one", TS), ("two", TS)]

"""The aggregator's memory budget (docs/operations.md, "Memory budget"): what a
client sends is bounded in bytes across all connections (pipeline.max_pending_bytes),
an event whose parsed form would be far larger than its text is dead-lettered
instead of expanded (pipeline.max_event_memory), and the other places where a
small input used to become a large allocation (a v1 `D` value, mutate split,
an Elasticsearch `_bulk` reply) are capped before they grow.

Peak memory is read from VmHWM (the process's RSS high-water mark). Under ASan
every allocation costs more (shadow, redzones, quarantine), so the bounds are
wider there; each is still far below what the same input took before."""

import json
import os
import struct
import threading
import time
import zlib

from conftest import BUILD, DEADLINE, wait_for
from fake_es import FakeES
from ljclient import LJClient, json_frame, window_frame
from test_aggregator import TS, base_config, start_agg  # noqa: F401 (fixture)

SANITIZED = "asan" in os.path.basename(os.path.normpath(BUILD))
MIB = 1024 * 1024


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def ack(seq, version=b"2"):
    return version + b"A" + struct.pack(">I", seq)


def window_ack(c):
    """The next ACK's seq, past the keepalive ACK 0s sent while a window is held."""
    while True:
        _, seq = c.read_acks(1)[0]
        if seq:
            return seq


def array_bomb(nbytes):
    """{"@timestamp":..,"a":[0,0,...]} of about nbytes: each 2-byte item parses to a value."""
    head = b'{"@timestamp":"' + TS.encode() + b'","a":['
    n = (nbytes - len(head)) // 2
    return head + b"0," * (n - 1) + b"0]}"


def dlq_records(d):
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, name), "rb") as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def bomb_config(tmp_path, output=None, filt="mutate: {rename: {a: b}}"):
    """A pipeline that parses the bomb's member: a filter touches it (the
    others' members stay text), or (json at the root) every member."""
    return base_config(tmp_path, output=output).replace(
        "  filters: []\n", f"  filters:\n    - {filt}\n")


def test_array_bomb_is_dead_lettered_and_the_rest_delivered(start_agg, tmp_path):
    """16 MB of "0," used to peak at ~500 MB (each item a 32-byte value, twice).
    Now its parse stops at its text + max_event_memory: it goes to the dead-letter
    path as a string, the two good events of its window are written, and the
    window is ACKed once."""
    dlq = tmp_path / "dlq"
    out = (f'    - file: {{path: "{tmp_path}/out/events-%{{+yyyy.MM.dd}}.ndjson", '
           f'dead_letter_path: "{dlq}"}}\n')
    a = start_agg(tmp_path, bomb_config(tmp_path, out))
    bomb = array_bomb(16 * MIB)
    c = LJClient(a.port, timeout=DEADLINE)
    good = [{"@timestamp": TS, "message": f"g{i}"} for i in range(2)]
    c.send(window_frame(3) + json_frame(1, good[0]) + json_frame(2, bomb) + json_frame(3, good[1]))
    assert window_ack(c) == 3
    assert a.out() == good
    recs = dlq_records(dlq)
    assert len(recs) == 1
    assert recs[0]["reason"] == "event_too_large" and recs[0]["bytes"] == len(bomb)
    assert recs[0]["event"] == bomb.decode()  # the text, as a JSON string
    m = a.metrics()
    assert m["sluice_aggregator_events_too_large_total"] == 1
    assert m['sluice_aggregator_output_events_total{output="file",result="dead_letter"}'] == 1
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 2
    assert m["sluice_aggregator_events_acked_total"] == 3
    peak = vm_hwm_mb(a.proc.p.pid)
    print(f"peak RSS {peak:.0f} MB")
    # Text in the window and in the decoder (2 x 16 MB), the record written
    # (16 MB), 16 + 16 MB of tree at most and the parser's stack as much: ~130 MB
    # at worst (77 MB measured); it was ~550.
    assert peak < (300 if SANITIZED else 160), f"peak RSS {peak:.0f} MB"


def test_array_bomb_without_dead_letter_path_is_dropped_and_counted(start_agg, tmp_path):
    """The same through a whole-event parse (json at the root declares every
    field), without a dead_letter_path: dropped, counted, the window ACKed."""
    a = start_agg(tmp_path, bomb_config(tmp_path, filt="json: {source: msg}").replace(
        "  workers: 1\n", "  workers: 1\n  max_event_memory: 1mb\n"))
    c = LJClient(a.port, timeout=DEADLINE)
    good = {"@timestamp": TS, "message": "after"}
    c.send(window_frame(2) + json_frame(1, array_bomb(4 * MIB)) + json_frame(2, good))
    assert window_ack(c) == 2
    assert a.out() == [good]
    m = a.metrics()
    assert m["sluice_aggregator_events_too_large_total"] == 1
    assert m['sluice_aggregator_output_events_total{output="file",result="dropped"}'] == 1
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 1
    assert "pipeline.max_event_memory" in a.proc.logtext()


class BigSender(threading.Thread):
    """Sends `windows` windows of `per` events of `size` bytes each, pipelined
    (without waiting for ACKs), then reads every ACK."""

    def __init__(self, port, tag, windows, per, size):
        super().__init__(daemon=True)
        self.port, self.tag, self.windows, self.per, self.size = port, tag, windows, per, size
        self.acks, self.error = [], None

    def run(self):
        try:
            c = LJClient(self.port, timeout=DEADLINE)
            seq = 0
            for w in range(self.windows):
                frames = [window_frame(self.per)]
                for i in range(self.per):
                    seq += 1
                    ev = {"@timestamp": TS, "message": f"{self.tag}-{seq}",
                          "pad": "x" * self.size}
                    frames.append(json_frame(i + 1, ev))
                c.send(b"".join(frames))
            self.acks = c.read_acks(self.windows)
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


def test_many_connections_stay_within_max_pending_bytes(start_agg, tmp_path):
    """12 clients pipeline 4 windows of 4 x 1 MB each (192 MB in all) while the
    budget is 16 MB: the pending bytes never pass the budget by more than one
    piece, reading stops (counted) and resumes, and every event is written once."""
    cfg = base_config(tmp_path, input_extra="  max_window_bytes: 4mb\n").replace(
        "  workers: 1\n", "  workers: 1\n  max_pending_bytes: 16mb\n")
    a = start_agg(tmp_path, cfg)
    seen, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            try:
                v = a.metrics().get("sluice_aggregator_pending_bytes", 0)
                seen[0] = max(seen[0], v)
            except OSError:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    senders = [BigSender(a.port, f"c{k}", 4, 4, 1000 * 1000) for k in range(12)]
    for s in senders:
        s.start()
    for s in senders:
        s.join(DEADLINE * 3)
        assert not s.is_alive(), "a client did not get its ACKs"
        assert s.error is None, repr(s.error)
        assert [seq for _, seq in s.acks] == [4, 4, 4, 4]
    stop.set()
    sampler.join()
    print(f"highest pending_bytes seen: {seen[0]}")
    msgs = [e["message"] for e in a.out()]
    assert len(msgs) == 12 * 16 and len(set(msgs)) == len(msgs)
    m = a.metrics()
    assert m["sluice_aggregator_max_pending_bytes"] == 16 * MIB
    assert m["sluice_aggregator_pending_bytes"] == 0
    assert m["sluice_aggregator_pending_bytes_full_total"] >= 1
    # The budget, one 4 MB piece over it, and a 64 KiB read per connection.
    assert seen[0] <= 16 * MIB + 4 * MIB + 12 * 65536 + 4 * MIB, seen[0]
    peak = vm_hwm_mb(a.proc.p.pid)
    print(f"peak RSS {peak:.0f} MB")
    assert peak < (450 if SANITIZED else 150), f"peak RSS {peak:.0f} MB"


def test_budget_smaller_than_a_window_still_progresses(start_agg, tmp_path):
    """All of the budget held by windows still being read, nothing in the pipeline:
    the connection holding the most goes on (one piece over), so nothing deadlocks."""
    cfg = base_config(tmp_path, input_extra="  max_window_bytes: 4mb\n").replace(
        "  workers: 1\n", "  workers: 1\n  max_pending_bytes: 1mb\n")
    a = start_agg(tmp_path, cfg)
    senders = [BigSender(a.port, f"s{k}", 2, 3, 1000 * 1000) for k in range(3)]
    for s in senders:
        s.start()
    for s in senders:
        s.join(DEADLINE * 2)
        assert not s.is_alive() and s.error is None, repr(s.error)
        assert [seq for _, seq in s.acks] == [3, 3]
    assert len(a.out()) == 18
    assert a.metrics()["sluice_aggregator_pending_bytes"] == 0


def d_frame(seq, pairs, version=b"1"):
    body = b"".join(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
                    for k, v in pairs)
    return version + b"D" + struct.pack(">II", seq, len(pairs)) + body


def v1_compressed(frames):
    data = zlib.compress(frames, 6)
    return b"1C" + struct.pack(">I", len(data)) + data


def test_v1_data_value_is_measured_before_it_is_escaped(start_agg, tmp_path):
    """A 60 MB `D` value of control bytes (60 KB compressed) would be 360 MB of
    JSON once escaped: refused from its measured size (frame_bytes), before any
    of it is converted. A D frame within the limit is still delivered."""
    a = start_agg(tmp_path, base_config(tmp_path))
    c = LJClient(a.port, timeout=DEADLINE)
    small = d_frame(1, [(b"@timestamp", TS.encode()), (b"message", b"tab\there")])
    c.send(b"1W" + struct.pack(">I", 1) + small)
    assert c.read_raw(6) == ack(1, b"1")
    assert a.out() == [{"@timestamp": TS, "message": "tab\there"}]

    bomb = d_frame(1, [(b"message", b"\x01" * (60 * MIB))])
    frame = v1_compressed(bomb)
    assert len(frame) < 200 * 1024
    c2 = LJClient(a.port, timeout=DEADLINE)
    c2.send(b"1W" + struct.pack(">I", 1) + frame)
    assert c2.wait_closed() == b""
    wait_for(lambda: a.metrics().get(
        'sluice_aggregator_protocol_errors_total{reason="frame_bytes"}') == 1,
        what="the D frame refused as frame_bytes")
    assert "v1 data frame as JSON exceeds max_frame" in a.proc.logtext()
    peak = vm_hwm_mb(a.proc.p.pid)
    print(f"peak RSS {peak:.0f} MB")
    # The inflated frame (60 MB) is held while it is measured; 360 MB never is.
    assert peak < (300 if SANITIZED else 160), f"peak RSS {peak:.0f} MB"


def test_mutate_split_is_bounded(start_agg, tmp_path):
    """10 MB of commas used to peak at 670 MB (10 million empty strings made,
    then dropped): the pieces are counted first, so it is [] at once; 10 MB of
    "a," (5 million pieces, ~170 MB of values) is over the split's budget: the
    event keeps its string and is tagged _mutate_error, as any mutate failure."""
    cfg = base_config(tmp_path).replace(
        "  filters: []\n", "  filters:\n    - mutate: {split: {m: \",\"}}\n")
    a = start_agg(tmp_path, cfg)
    c = LJClient(a.port, timeout=DEADLINE)
    commas = "," * (10 * MIB)
    pieces = "a," * (5 * MIB)
    c.send(window_frame(3) + json_frame(1, {"@timestamp": TS, "m": commas}) +
           json_frame(2, {"@timestamp": TS, "m": pieces}) +
           json_frame(3, {"@timestamp": TS, "m": "x,y,,z,,"}))
    assert window_ack(c) == 3
    got = a.out()
    assert got[0] == {"@timestamp": TS, "m": []}
    assert got[1] == {"@timestamp": TS, "m": pieces, "tags": ["_mutate_error"]}
    assert got[2] == {"@timestamp": TS, "m": ["x", "y", "", "z"]}
    peak = vm_hwm_mb(a.proc.p.pid)
    print(f"peak RSS {peak:.0f} MB")
    assert peak < (300 if SANITIZED else 200), f"peak RSS {peak:.0f} MB"


def test_elasticsearch_reply_larger_than_its_request_needs_is_retried(start_agg, tmp_path):
    """A 20 MB reply to a _bulk of 5 items (1 MiB + 5 x 8 KiB at most) is not
    read further (it was parsed whole, and trusted): the request counts as failed
    and is retried, and the retry's normal reply indexes all 5 once."""
    items = [{"index": {"_index": "i", "_id": f"x{i}", "status": 201}} for i in range(5)]
    raw = json.dumps({"took": 1, "errors": False, "items": items,
                      "pad": "x" * (20 * MIB)}, separators=(",", ":"))
    fake = FakeES([{"raw": raw}]).start()
    try:
        out = (f'    - elasticsearch:\n        hosts: ["{fake.url}"]\n'
               f'        index: "t-%{{+yyyy.MM.dd}}"\n        manage_template: false\n'
               f'        backoff: {{init: 100ms, max: 1s}}\n')
        a = start_agg(tmp_path, base_config(tmp_path, output=out))
        c = LJClient(a.port, timeout=DEADLINE)
        c.send_window([{"@timestamp": TS, "message": f"e{i}"} for i in range(5)])
        assert window_ack(c) == 5
        assert [len(r) for r in fake.requests] == [5, 5]
        assert sorted(d["message"] for d in fake.docs()) == [f"e{i}" for i in range(5)]
        m = a.metrics()
        key = 'sluice_aggregator_es_bulk_replies_too_large_total{output="elasticsearch"}'
        assert m[key] == 1
        assert m['sluice_aggregator_output_events_total{output="elasticsearch",result="ok"}'] == 5
        assert "was not read further" in a.proc.logtext()
    finally:
        fake.stop()

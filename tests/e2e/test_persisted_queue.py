"""queue.type: persisted end to end: a window is ACKed once fsynced in the
on-disk queue, and nothing ACKed is lost whatever happens to the process.

- kill -9 at random instants (seeded; the seed is printed, SLUICE_PQ_SEED=N
  replays it) while two clients
  pipeline windows, with pages small enough that appends, page rolls and ack
  checkpoints are all happening: after every restart the queue is recovered,
  and in the end every ACKed event is in the file output; duplicates are only
  events that were in flight at a kill;
- a torn tail and a corrupt page left in the directory: the tail is cut, the
  page moved aside and counted, everything else served; --queue-stats reports
  both without repairing anything;
- a full disk (RLIMIT_FSIZE, lifted later with prlimit): the window is not
  ACKed, the error counted, nothing ACKed lost, and the resent window goes
  through once there is room;
- queue.max_bytes: a full queue stops ACKing (backpressure), never drops;
- the real OpenSearch stopped for 20 s while windows keep coming: every one is
  ACKed during the outage (the queue absorbs it; 20 s rather than a minute to
  keep CI short - the queue's behaviour does not change with the length), the
  aggregator is even killed -9 mid-outage, and after OpenSearch is back every
  event is indexed.
"""

import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest


from conftest import AGGREGATOR, DEADLINE, ROOT, metrics_of, wait_for, write_config
from ljclient import encode_window, json_frame, window_frame

sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import started  # noqa: E402  (tests/servers/started.py)

TS = "2026-11-27T06:00:00.000Z"
ID = re.compile(rb'"id":"([^"]+)"')
SERVER = os.path.join(ROOT, "tests", "servers", "opensearch")


def ack(seq):
    return b"2A" + struct.pack(">I", seq)


def window(tag, n, pad=40):
    return [{"@timestamp": TS, "message": "m" * pad, "id": f"{tag}-{i}"} for i in range(n)]


def config(tmp_path, qdir, queue_extra="", output=None, pending=512):
    out = output or f'  - file: {{path: "{tmp_path}/out/events.ndjson"}}\n'
    return (
        "input:\n"
        "  listen: 127.0.0.1:0\n"
        "pipeline:\n"
        "  workers: 1\n"
        f"  max_pending_events: {pending}\n"
        "outputs:\n"
        f"{out}"
        "queue:\n"
        "  type: persisted\n"
        f"  path: {qdir}\n"
        f"{queue_extra}"
        "metrics:\n"
        "  listen: 127.0.0.1:0\n"
        "shutdown_timeout: 5s\n"
    )


class Agg:
    def __init__(self, proc, port, mport):
        self.proc, self.port, self.mport = proc, port, mport

    def metrics(self):
        return metrics_of(self.mport)

    def metric(self, key):
        return self.metrics().get(key)


def start(procs, tmp_path, text, argv_prefix=()):
    """Starts an aggregator; its log is appended to across restarts, so the
    ports are read from what this start wrote."""
    cfg = write_config(os.path.join(tmp_path, "agg.yml"), text)
    log = os.path.join(tmp_path, "agg.log")
    offset = os.path.getsize(log) if os.path.exists(log) else 0
    p = procs(list(argv_prefix) + [AGGREGATOR, "-c", cfg], log)

    def ports():
        if not p.alive():
            raise AssertionError(f"aggregator exited early:\n{p.logtext()[-4000:]}")
        text_ = p.logtext()[offset:]
        a = re.search(r"listening on 127\.0\.0\.1:(\d+)", text_)
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text_)
        return a and m and (int(a.group(1)), int(m.group(1)))

    port, mport = wait_for(ports, what="the aggregator's listening log lines")
    return Agg(p, port, mport)


def stop(agg):
    rc = agg.proc.stop(signal.SIGTERM)
    assert rc == 0, f"exit {rc}:\n{agg.proc.logtext()[-4000:]}"


def out_ids(tmp_path):
    """{id: times written}; robust to a line a kill cut in half (the next one is
    glued to it, and still counted)."""
    path = os.path.join(tmp_path, "out", "events.ndjson")
    if not os.path.exists(path):
        return {}
    counts = {}
    with open(path, "rb") as f:
        for m in ID.finditer(f.read()):
            k = m.group(1).decode()
            counts[k] = counts.get(k, 0) + 1
    return counts


def send_and_ack(port, evs, timeout=DEADLINE):
    """One window on a new connection; True once ACKed, False if the connection
    closed or failed first."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(encode_window(evs))
            got = b""
            while len(got) < 6:
                b = s.recv(6 - len(got))
                if not b:
                    return False
                got += b
                if got[:6] == ack(0)[:len(got)] and len(got) == 6:
                    got = b""  # a keepalive
            return got == ack(len(evs))
    except OSError:
        return False


class Pipelined:
    """A client that keeps `depth` windows in flight on one connection, as
    Filebeat does; windows not ACKed when the connection dies are resent by
    the caller."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.inflight = []
        self.buf = b""

    def send(self, tag, evs):
        self.s.sendall(encode_window(evs))
        self.inflight.append((tag, evs))

    def read_ack(self):
        while True:
            while len(self.buf) < 6:
                b = self.s.recv(4096)
                if not b:
                    raise ConnectionError("closed")
                self.buf += b
            a, self.buf = self.buf[:6], self.buf[6:]
            seq = struct.unpack(">I", a[2:])[0]
            if seq == 0:
                continue
            tag, evs = self.inflight.pop(0)
            assert seq == len(evs), (seq, len(evs))
            return tag, evs

    def close(self):
        self.s.close()


def test_ack_after_fsync_and_metrics(tmp_path, procs):
    qdir = tmp_path / "q"
    agg = start(procs, tmp_path, config(tmp_path, qdir))
    evs = window("a", 30)
    assert send_and_ack(agg.port, evs)
    wait_for(lambda: len(out_ids(tmp_path)) == 30, what="30 events in the file")
    m = agg.metrics()
    assert m["sluice_aggregator_events_acked_total"] == 30
    assert m["sluice_aggregator_queue_fsync_seconds_count"] >= 1
    assert m["sluice_aggregator_queue_max_bytes"] == 1 << 30
    wait_for(lambda: agg.metric("sluice_aggregator_queue_events") == 0, what="queue empty")
    assert agg.metric("sluice_aggregator_queue_bytes") == 0
    # Not JSON: the window fails as with the memory queue (closed, not ACKed), nothing queued.
    with socket.create_connection(("127.0.0.1", agg.port), timeout=10) as s:
        s.sendall(window_frame(2) + json_frame(1, {"message": "ok"}) + json_frame(2, b"{bad"))
        assert s.recv(16) == b""
    assert agg.metric('sluice_aggregator_protocol_errors_total{reason="invalid_json"}') == 1
    assert agg.metric("sluice_aggregator_queue_events") == 0
    # A second process cannot take the same queue.
    other = tmp_path / "other"
    other.mkdir()
    r = subprocess.run([AGGREGATOR, "-c", write_config(str(other / "a.yml"),
                                                       config(other, qdir))],
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode != 0 and "in use by another process" in r.stderr, r.stderr
    stop(agg)
    r = subprocess.run([AGGREGATOR, "--queue-stats", str(qdir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["events"] == 0 and st["ack_seq"] == 30 and st["in_use"] is False


def test_reload_keeps_the_queue_and_applies_new_filters(tmp_path, procs):
    qdir = tmp_path / "q"
    text = config(tmp_path, qdir)
    agg = start(procs, tmp_path, text)
    assert send_and_ack(agg.port, window("before", 5))
    wait_for(lambda: len(out_ids(tmp_path)) == 5, what="5 events written")
    reloaded = text.replace("pipeline:\n", "pipeline:\n  filters:\n"
                            "    - mutate: {add_fields: {reloaded: \"yes\"}}\n")
    # A new path takes effect only after a restart: the running queue stays.
    write_config(os.path.join(tmp_path, "agg.yml"),
                 reloaded.replace(f"path: {qdir}", f"path: {tmp_path}/elsewhere"))
    agg.proc.send(signal.SIGHUP)
    wait_for(lambda: agg.metric('sluice_aggregator_reloads_total{result="ok"}') == 1,
             what="the reload")
    assert "queue.type or queue.path changed; it takes effect after a restart" in \
        agg.proc.logtext()
    assert send_and_ack(agg.port, window("after", 5))
    wait_for(lambda: len(out_ids(tmp_path)) == 10, what="10 events written")
    with open(os.path.join(tmp_path, "out", "events.ndjson")) as f:
        evs = [json.loads(line) for line in f]
    assert [e.get("reloaded") for e in evs] == [None] * 5 + ["yes"] * 5
    assert not os.path.exists(tmp_path / "elsewhere")
    stop(agg)


def test_kill9_at_random_points_loses_nothing_acked(tmp_path, procs):
    seed = int(os.environ.get("SLUICE_PQ_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print(f"seed {seed}")
    qdir = tmp_path / "q"
    # Small pages: a roll every ~10 windows; the output acks batch after batch.
    text = config(tmp_path, qdir, "  max_bytes: 4mb\n  page_capacity: 64kb\n", pending=300)
    acked, unacked, kills, n = set(), [], 0, 0
    t_end = time.monotonic() + 120
    for it in range(22):
        agg = start(procs, tmp_path, text)
        kill_at = time.monotonic() + rnd.uniform(0.02, 0.8)
        clients = []
        try:
            clients = [Pipelined(agg.port) for _ in range(2)]
            todo = unacked + [(f"w{it}-{k}", window(f"w{it}-{k}", rnd.randint(1, 60)))
                              for k in range(400)]
            unacked = []
            while todo or any(c.inflight for c in clients):
                if time.monotonic() >= kill_at:
                    break
                for c in clients:
                    while todo and len(c.inflight) < 2:
                        c.send(*todo.pop(0))
                for c in clients:
                    if c.inflight:
                        tag, evs = c.read_ack()
                        acked.update(e["id"] for e in evs)
                        n += 1
        except (OSError, ConnectionError):
            pass
        agg.proc.kill9()
        kills += 1
        for c in clients:
            unacked += c.inflight
            c.close()
        unacked += todo
        if time.monotonic() > t_end:
            break
    # A last start: what is queued is delivered; the clients resend what was never ACKed.
    agg = start(procs, tmp_path, text)
    for tag, evs in unacked:
        assert send_and_ack(agg.port, evs), tag
        acked.update(e["id"] for e in evs)
    wait_for(lambda: agg.metric("sluice_aggregator_queue_events") == 0, what="queue drained")
    stop(agg)
    got = out_ids(tmp_path)
    missing = acked - set(got)
    assert not missing, f"{len(missing)} ACKed events lost (seed {seed}), e.g. {sorted(missing)[:5]}"
    dups = sum(c - 1 for c in got.values())
    print(f"{kills} kills, {n} windows ACKed, {len(acked)} events, {dups} duplicates")
    assert kills >= 20
    # In flight at a kill: at most pipeline.max_pending_events read from the queue,
    # plus the windows being persisted (4 x 60 events).
    assert dups <= kills * (300 + 240), f"{dups} duplicates for {kills} kills (seed {seed})"


def test_torn_tail_and_corrupt_page_on_restart(tmp_path, procs):
    qdir = tmp_path / "q"
    # An output that cannot deliver (nothing listens there): events stay queued.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    es = (f'  - elasticsearch: {{hosts: ["127.0.0.1:{port}"], index: x, '
          'backoff: {init: 100ms, max: 200ms}}\n')
    agg = start(procs, tmp_path, config(tmp_path, qdir, "  page_capacity: 64kb\n", output=es))
    for k in range(30):  # ~6 KB a window: about 3 pages
        assert send_and_ack(agg.port, window(f"t{k}", 50, pad=60))
    wait_for(lambda: agg.metric("sluice_aggregator_queue_events") == 1500, what="1500 queued")
    agg.proc.kill9()
    pages = sorted((p for p in os.listdir(qdir) if re.fullmatch(r"page\.\d+", p)),
                   key=lambda p: int(p.split(".")[1]))
    assert len(pages) >= 3, pages
    # The last page: half a record at its end (a write the kill cut short).
    with open(qdir / pages[-1], "ab") as f:
        f.write(struct.pack("<IIQ", 500, 0, 0) + b'{"id":"torn"')
    # The first page: a byte flipped in the middle of a record.
    with open(qdir / pages[0], "r+b") as f:
        f.seek(2000)
        b = f.read(1)
        f.seek(2000)
        f.write(bytes([b[0] ^ 0xFF]))
    r = subprocess.run([AGGREGATOR, "--queue-stats", str(qdir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    states = {p["page"]: p["state"] for p in st["pages"]}
    assert states[int(pages[0].split(".")[1])] == "corrupt"
    assert states[int(pages[-1].split(".")[1])] == "torn_tail"
    assert st["torn_bytes"] == 16 + len(b'{"id":"torn"')
    assert st["corrupt_pages"] == 1
    lost = 1500 - st["events"]  # the corrupt page's events
    assert 0 < lost < 1500
    # Restart with a working output: everything but the corrupt page is delivered.
    agg = start(procs, tmp_path, config(tmp_path, qdir, "  page_capacity: 64kb\n"))
    log = agg.proc.logtext()
    assert "cut a torn tail of 28 bytes" in log
    assert "1 corrupt page(s) moved aside" in log
    assert agg.metric("sluice_aggregator_queue_corrupt_pages_total") == 1
    wait_for(lambda: len(out_ids(tmp_path)) == 1500 - lost, what="the rest delivered")
    assert (qdir / f"{pages[0]}.corrupt").exists()
    got = out_ids(tmp_path)
    assert "torn" not in got
    # The events lost are those of the first page only (t0-..., the oldest windows).
    assert all(f"t{k}-{i}" in got for k in range(25, 30) for i in range(50))
    stop(agg)


def _fsize_limited(limit):
    """argv prefix: runs the aggregator with a soft RLIMIT_FSIZE (SIGXFSZ ignored,
    so a write past it fails with EFBIG as on a full disk; the hard limit stays
    unlimited so the test can lift it); the PID stays the same."""
    code = ("import os,resource,signal,sys;signal.signal(signal.SIGXFSZ,signal.SIG_IGN);"
            f"resource.setrlimit(resource.RLIMIT_FSIZE,({limit},resource.RLIM_INFINITY));"
            "os.execv(sys.argv[1],sys.argv[1:])")
    return [sys.executable, "-c", code]


def test_disk_full_does_not_ack_and_loses_nothing(tmp_path, procs):
    import resource
    qdir = tmp_path / "q"
    limit = 200_000
    agg = start(procs, tmp_path, config(tmp_path, qdir, "  page_capacity: 1mb\n"),
                argv_prefix=_fsize_limited(limit))
    acked, k = set(), 0
    while True:  # ~8 KB a window: about 25 fit under the limit
        evs = window(f"d{k}", 60, pad=60)
        if not send_and_ack(agg.port, evs, timeout=20):
            break
        acked.update(e["id"] for e in evs)
        k += 1
        assert k < 100, "the file size limit never hit"
    assert 15 <= k <= 30, k
    wait_for(lambda: agg.metric("sluice_aggregator_queue_write_errors_total") == 1,
             what="the write error counted")
    assert agg.metric("sluice_aggregator_windows_failed_total") == 1
    assert "cannot append a window of 60 events: File too large" in agg.proc.logtext()
    # Still full: the resent window fails again; room comes back (the limit lifted).
    assert not send_and_ack(agg.port, evs, timeout=20)
    resource.prlimit(agg.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # the soft limit only
    assert send_and_ack(agg.port, evs)
    acked.update(e["id"] for e in evs)
    wait_for(lambda: acked <= set(out_ids(tmp_path)), what="every ACKed event written")
    assert max(out_ids(tmp_path).values()) == 1
    stop(agg)
    r = subprocess.run([AGGREGATOR, "--queue-stats", str(qdir)], capture_output=True, text=True)
    st = json.loads(r.stdout)
    assert st["events"] == 0 and st["torn_bytes"] == 0 and st["corrupt_pages"] == 0


def test_full_queue_stops_acking_never_drops(tmp_path, procs):
    qdir = tmp_path / "q"
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    es = (f'  - elasticsearch: {{hosts: ["127.0.0.1:{port}"], index: x, '
          'backoff: {init: 100ms, max: 200ms}}\n')
    agg = start(procs, tmp_path, config(tmp_path, qdir, "  max_bytes: 1mb\n"
                                        "  page_capacity: 64kb\n", output=es))
    acked = 0
    while True:  # ~10 KB a window: about 100 fit in 1 MB
        if not send_and_ack(agg.port, window(f"f{acked}", 80, pad=60), timeout=3):
            break
        acked += 1
        assert acked < 200, "max_bytes never reached"
    assert 80 <= acked <= 110, acked
    m = agg.metrics()
    assert m["sluice_aggregator_queue_bytes"] <= 1 << 20
    assert m["sluice_aggregator_queue_events"] == acked * 80
    assert m["sluice_aggregator_queue_full_total"] >= 1
    # The refused window was not dropped either: it never was ACKed, the client keeps it.
    agg.proc.kill9()
    agg = start(procs, tmp_path, config(tmp_path, qdir, "  max_bytes: 1mb\n"
                                        "  page_capacity: 64kb\n"))
    wait_for(lambda: len(out_ids(tmp_path)) == acked * 80, what="every ACKed event delivered")
    stop(agg)


# ---- the real OpenSearch ----

def _opensearch_req(url, method, path, body=None):
    import urllib.request
    import urllib.error
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url + path, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def opensearch():
    for url in started.opensearch():
        yield url


def _ids_in(url, index):
    """Every document's id (scrolled: no 10000-hit window limit)."""
    st, body = _opensearch_req(url, "POST", f"/{index}/_search?scroll=1m",
                               {"size": 5000, "sort": ["_doc"], "_source": ["id"]})
    assert st == 200, body
    out = []
    while body["hits"]["hits"]:
        out += [h["_source"]["id"] for h in body["hits"]["hits"]]
        st, body = _opensearch_req(url, "POST", "/_search/scroll",
                                   {"scroll": "1m", "scroll_id": body["_scroll_id"]})
        assert st == 200, body
    _opensearch_req(url, "DELETE", "/_search/scroll", {"scroll_id": body["_scroll_id"]})
    return out


def test_opensearch_outage_is_absorbed(tmp_path, procs, opensearch):
    url = opensearch
    index = f"pq-outage-{os.getpid()}-{int(time.time())}"
    _opensearch_req(url, "DELETE", f"/{index}")
    es = (f'  - elasticsearch: {{hosts: ["{url}"], index: "{index}", '
          'backoff: {init: 200ms, max: 2s}, timeout: 10s}\n')
    qdir = tmp_path / "q"
    text = config(tmp_path, qdir, "  page_capacity: 256kb\n", output=es)
    agg = start(procs, tmp_path, text)
    sent = set()
    for k in range(10):
        evs = window(f"before{k}", 100)
        assert send_and_ack(agg.port, evs)
        sent.update(e["id"] for e in evs)

    def count():
        _opensearch_req(url, "POST", f"/{index}/_refresh")
        st, body = _opensearch_req(url, "GET", f"/{index}/_count")
        return body["count"] if st == 200 else 0

    wait_for(lambda: count() == 1000, what="1000 documents before the outage")
    subprocess.run([SERVER, "stop"], check=True, capture_output=True, timeout=120)
    try:
        # 20 s of windows while the node is down: each is ACKed at once (fsynced), none waits.
        t_end, k, slowest = time.monotonic() + 20, 0, 0.0
        while time.monotonic() < t_end:
            evs = window(f"during{k}", 100)
            t0 = time.monotonic()
            assert send_and_ack(agg.port, evs, timeout=10), f"window {k} not ACKed in the outage"
            slowest = max(slowest, time.monotonic() - t0)
            sent.update(e["id"] for e in evs)
            k += 1
            time.sleep(0.05)
        assert k >= 50 and slowest < 5, (k, slowest)
        queued = agg.metric("sluice_aggregator_queue_events")
        assert queued == k * 100, (queued, k)
        assert agg.metric("sluice_aggregator_queue_oldest_event_age_seconds") >= 0
        # Even a kill -9 in the middle of the outage loses nothing ACKed.
        agg.proc.kill9()
        agg = start(procs, tmp_path, text)
        assert agg.metric("sluice_aggregator_queue_events") == k * 100
    finally:
        r = subprocess.run([SERVER, "start"], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, OPENSEARCH_PORT=url.rsplit(":", 1)[1]))
        assert r.returncode == 0, r.stderr[-3000:]
    wait_for(lambda: agg.metric("sluice_aggregator_queue_events") == 0, timeout=180,
             what="the queue drained into OpenSearch")
    total = len(sent)
    wait_for(lambda: count() >= total, what=f"{total} documents")
    ids = _ids_in(url, index)
    assert set(ids) == sent
    n = len(ids)
    print(f"outage: {total} events sent, {n} documents, {k} windows during the outage")
    assert n - total <= 300 + 1000, n  # duplicates: in flight at the kill at most
    stop(agg)
    _opensearch_req(url, "DELETE", f"/{index}")

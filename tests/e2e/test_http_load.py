"""The /metrics and /healthz server (lib/http.c) under hostile load, against
the real aggregator on loopback: slow clients trickling a request byte by byte
must not starve health probes, and 100 concurrent scrapers must never be
refused. Both tests are bounded in time (a few seconds of load each)."""

import socket
import threading
import time

from conftest import AGGREGATOR, free_port, wait_port, write_config


def start_aggregator(procs, tmp_path):
    mport = free_port()
    cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{free_port()}"}}
outputs: [{{file: {{path: "{tmp_path}/out.ndjson"}}}}]
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    p = procs([AGGREGATOR, "-c", str(cfg)], str(tmp_path / "aggregator.log"))
    wait_port(mport, p)
    return p, mport


def raw_get(port, path, timeout):
    """(status, body) of one GET, or (None, error) when it failed within timeout."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return None, repr(e)
    if not data.startswith(b"HTTP/1.1 "):
        return None, f"no response ({data[:40]!r})"
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body.decode(errors="replace")


class Trickler(threading.Thread):
    """A client sending a request one byte per interval, reconnecting when the
    server drops it: it holds a connection open as long as it is let."""

    REQUEST = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"

    def __init__(self, port, stop, interval=0.1):
        super().__init__(daemon=True)
        self.port, self.stop, self.interval = port, stop, interval

    def run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    for i in range(len(self.REQUEST)):
                        if self.stop.wait(self.interval):
                            return
                        s.sendall(self.REQUEST[i:i + 1])
            except OSError:
                self.stop.wait(0.05)


def test_probes_are_answered_while_70_clients_trickle(tmp_path, procs):
    agg, mport = start_aggregator(procs, tmp_path)
    stop = threading.Event()
    slow = [Trickler(mport, stop) for _ in range(70)]
    for t in slow:
        t.start()
    try:
        time.sleep(0.5)  # every trickler connected
        results = []
        end = time.monotonic() + 4
        while time.monotonic() < end:
            t0 = time.monotonic()
            status, body = raw_get(mport, "/healthz", timeout=1)
            results.append((status, body, time.monotonic() - t0))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    finally:
        stop.set()
        for t in slow:
            t.join(5)
    failed = [r for r in results if r[0] != 200 or r[2] > 1]
    assert len(results) >= 20
    assert not failed, f"{len(failed)} of {len(results)} probes failed: {failed[:5]}"
    assert agg.alive()
    assert agg.stop() == 0


def test_100_concurrent_scrapers_are_never_refused(tmp_path, procs):
    agg, mport = start_aggregator(procs, tmp_path)
    per_client = 20
    outcomes = []
    lock = threading.Lock()

    def scraper():
        mine = []
        for _ in range(per_client):
            status, body = raw_get(mport, "/metrics", timeout=10)
            mine.append(status if status == 200 else (status, body))
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=scraper, daemon=True) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 100 * per_client
    failed = [o for o in outcomes if o != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} scrapes failed: {failed[:5]}"
    assert agg.stop() == 0

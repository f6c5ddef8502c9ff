"""Filter worker threads (pipeline.workers): several clients pipeline many
windows, some holding events a real filter is slow on (mutate gsub over a big
field); with two workers later windows often finish filtering first, yet each
connection's events reach the file output in the order they were sent, and
the filter counters are exact."""

import os
import threading

from conftest import DEADLINE, wait_for
from ljclient import LJClient, encode_window
from test_aggregator import ack, start_agg  # noqa: F401 (fixture)

TS = "2026-11-27T06:00:00.000Z"
BIG = "a" * 20_000  # gsub rewrites every character: about a millisecond per event


def workers_config(tmp_path, workers, batch_size=7):
    return (
        "input:\n"
        "  listen: 127.0.0.1:0\n"
        "  max_pending_windows: 8\n"
        "pipeline:\n"
        f"  workers: {workers}\n"
        f"  batch_size: {batch_size}\n"
        "  filters:\n"
        "    - mutate:\n"
        "        gsub: [big, 'a', 'b']\n"
        "        when: {field: slow, equals: true}\n"
        "    - drop: {when: {field: drop, equals: true}}\n"
        "    - mutate: {add_fields: {worker_seen: 'yes'}, remove_fields: [big]}\n"
        "outputs:\n"
        f'    - file: {{path: "{tmp_path}/out/events.ndjson"}}\n'
        "metrics:\n"
        "  listen: 127.0.0.1:0\n"
        "shutdown_timeout: 5s\n")


def conn_windows(conn, nwin, per_win):
    """Windows of one connection; every 5th holds slow events, every 7th event is dropped."""
    wins = []
    n = 0
    for w in range(nwin):
        evs = []
        for i in range(per_win):
            e = {"@timestamp": TS, "message": f"c{conn}-{n}", "conn": conn, "n": n}
            if w % 5 == 0 and i < 3:
                e["slow"] = True
                e["big"] = BIG
            if n % 7 == 3:
                e["drop"] = True
            evs.append(e)
            n += 1
        wins.append(evs)
    return wins


def run_client(port, wins, errors):
    try:
        c = LJClient(port, timeout=DEADLINE)
        payload = b"".join(
            encode_window(w, "zlib" if i % 2 else None)
            for i, w in enumerate(wins))
        sender = threading.Thread(target=c.send, args=(payload,), daemon=True)
        sender.start()  # all windows at once: far more than max_pending_windows
        got = c.read_raw(6 * len(wins), timeout=DEADLINE)
        sender.join(DEADLINE)
        assert got == b"".join(ack(len(w)) for w in wins)
        c.close()
    except Exception as e:  # reported by the test
        errors.append(e)


def test_per_connection_order_and_exact_filter_metrics(start_agg, tmp_path):
    a = start_agg(tmp_path, workers_config(tmp_path, workers=2))
    conns = {c: conn_windows(c, nwin=30, per_win=12) for c in range(4)}
    errors = []
    threads = [threading.Thread(target=run_client, args=(a.port, w, errors))
               for w in conns.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    assert not errors, errors

    total = sum(len(w) for ws in conns.values() for w in ws)
    slow = sum(1 for ws in conns.values() for w in ws for e in w if e.get("slow"))
    dropped = sum(1 for ws in conns.values() for w in ws for e in w if e.get("drop"))
    kept = total - dropped
    path = os.path.join(tmp_path, "out", "events.ndjson")
    wait_for(lambda: len(a.out("events.ndjson")) == kept, what=f"{kept} events written")
    out = a.out("events.ndjson")
    for c, ws in conns.items():
        want = [e["n"] for w in ws for e in w if not e.get("drop")]
        got = [e["n"] for e in out if e["conn"] == c]
        assert got == want, f"connection {c} out of order"
    assert all(e["worker_seen"] == "yes" and "big" not in e for e in out)
    assert os.path.getsize(path) < 10_000_000

    m = a.metrics()
    # Each mutate instance is its own series: the gsub one ("mutate") on slow
    # events (its `when`), the add_fields one ("mutate_2") on every event not dropped.
    assert m['sluice_aggregator_filter_events_total{filter="mutate",result="ok"}'] == slow
    assert m['sluice_aggregator_filter_events_total{filter="mutate_2",result="ok"}'] == kept
    assert m['sluice_aggregator_filter_events_total{filter="drop",result="dropped"}'] == dropped
    assert m['sluice_aggregator_filter_events_total{filter="drop",result="ok"}'] == 0
    assert m['sluice_aggregator_filter_events_total{filter="mutate",result="error"}'] == 0
    assert m['sluice_aggregator_filter_events_total{filter="mutate_2",result="error"}'] == 0
    assert m["sluice_aggregator_events_received_total"] == total
    assert m["sluice_aggregator_events_acked_total"] == total
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == kept
    assert m["sluice_aggregator_queue_events"] == 0


def test_sighup_mid_stream_keeps_order_and_loses_nothing(start_agg, tmp_path):
    """Windows filtered by the old pipeline and the new one, same connection:
    the retired pipeline finishes its jobs (its workers joined), order holds."""
    import signal

    a = start_agg(tmp_path, workers_config(tmp_path, workers=2, batch_size=3))
    wins = conn_windows(0, nwin=40, per_win=10)
    c = LJClient(a.port, timeout=DEADLINE)
    payload = b"".join(encode_window(w) for w in wins)
    sender = threading.Thread(target=c.send, args=(payload,), daemon=True)
    sender.start()
    got = c.read_raw(6 * 5)  # a few windows through the first pipeline
    cfg = os.path.join(tmp_path, "agg.yml")
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("workers: 2", "workers: 3"))
    a.proc.send(signal.SIGHUP)
    got += c.read_raw(6 * (len(wins) - 5))
    sender.join(DEADLINE)
    assert got == b"".join(ack(len(w)) for w in wins)
    assert a.metric('sluice_aggregator_reloads_total{result="ok"}') == 1
    want = [e["n"] for w in wins for e in w if not e.get("drop")]
    wait_for(lambda: len(a.out("events.ndjson")) == len(want), what="every event written")
    assert [e["n"] for e in a.out("events.ndjson")] == want
    wait_for(lambda: "finished its last batch and was freed" in a.proc.logtext(),
             what="the retired pipeline freed")

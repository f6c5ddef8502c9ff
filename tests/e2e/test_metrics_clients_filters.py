"""Per-client series and filter duration histograms of the aggregator
(docs/operations.md): clients from different source addresses (127.0.0.1 and
127.0.0.2; the loopback takes any 127/8 address) get exact counts under their
IP, or under their certificate's CN with mTLS; past input.client_metrics_max
new clients land in client="other"; a client gone for
input.client_metrics_forget_after loses its series. Each filter's histogram
counts exactly the events it ran on (a `when` that skipped an event does not
count it, an event dropped earlier is not seen), with cumulative buckets. And
on the shipper, lines read and dropped per input."""

import re
import socket

from conftest import DEADLINE, metrics_of, wait_for
from ljclient import LJClient
from stack import Stack, append_lines
from test_aggregator import ack, base_config, events, start_agg  # noqa: F401 (fixture)
from test_aggregator_tls import client_ctx, pki, tls_input  # noqa: F401 (fixture)

EV = "sluice_aggregator_client_events_total"
ACKED = "sluice_aggregator_client_events_acked_total"
CONNS = "sluice_aggregator_client_connections"
HIST = "sluice_aggregator_filter_duration_seconds"


def client_from(port, source):
    """An LJClient whose socket is bound to source (a 127/8 address)."""
    c = LJClient.__new__(LJClient)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE,
                                      source_address=(source, 0))
    c.timeout = DEADLINE
    c.buf = b""
    return c


def send(c, evs):
    c.send_window(evs)
    assert c.read_raw(6) == ack(len(evs))


def key(name, client):
    return f'{name}{{client="{client}"}}'


def client_series(m):
    """{client: events} of every client_events_total series."""
    out = {}
    for k, v in m.items():
        r = re.fullmatch(EV + r'\{client="([^"]*)"\}', k)
        if r:
            out[r.group(1)] = v
    return out


FILTERS = (
    "  filters:\n"
    "    - drop: {id: dropper, when: {field: drop, equals: true}}\n"
    "    - mutate: {id: tagger, add_fields: {seen: 'yes'}}\n"
    "    - mutate:\n"
    "        id: slowpath\n"
    "        add_fields: {slow_seen: 'yes'}\n"
    "        when: {field: slow, equals: true}\n")


def filters_config(tmp_path, input_extra=""):
    return base_config(tmp_path, input_extra).replace("  filters: []\n", FILTERS)


def histogram(m, filt):
    """([(le, cumulative count)], sum, count) of one filter's histogram."""
    buckets = []
    for k, v in m.items():
        r = re.fullmatch(HIST + r'_bucket\{filter="' + filt + r'",le="([^"]+)"\}', k)
        if r:
            buckets.append((float(r.group(1)), v))
    buckets.sort()
    return (buckets, m[f'{HIST}_sum{{filter="{filt}"}}'],
            m[f'{HIST}_count{{filter="{filt}"}}'])


def test_per_client_counts_and_filter_histograms(start_agg, tmp_path):
    a = start_agg(tmp_path, filters_config(tmp_path))
    # Client 127.0.0.1: two connections open at once, 10 + 5 events; 127.0.0.2: 7 events.
    # drop: events 0 and 1 of every window; slow: every third event (seq 0, 3, 6, ...).
    def evs(n, prefix):
        return [dict(e, drop=e["seq"] < 2, slow=e["seq"] % 3 == 0)
                for e in events(n, prefix)]
    a1, a2 = client_from(a.port, "127.0.0.1"), client_from(a.port, "127.0.0.1")
    b = client_from(a.port, "127.0.0.2")
    send(a1, evs(10, "a1-"))
    send(a2, evs(5, "a2-"))
    send(b, evs(7, "b-"))
    m = a.metrics()
    assert client_series(m) == {"127.0.0.1": 15, "127.0.0.2": 7}
    assert m[key(ACKED, "127.0.0.1")] == 15
    assert m[key(ACKED, "127.0.0.2")] == 7
    assert m[key(CONNS, "127.0.0.1")] == 2
    assert m[key(CONNS, "127.0.0.2")] == 1
    assert key(EV, "other") not in m
    assert m["sluice_aggregator_events_received_total"] == 22

    # Per event each filter ran on. dropper runs where drop is true: 2 per window, 6.
    # tagger runs on every event still alive: 22 - 6 = 16. slowpath: slow events not
    # dropped (seq 3, 6, 9 of 10; 3 of 5; 3, 6 of 7) = 3 + 1 + 2 = 6.
    want = {"dropper": 6, "tagger": 16, "slowpath": 6}
    for filt, n in want.items():
        buckets, total, count = histogram(m, filt)
        assert count == n, filt
        assert buckets[-1] == (float("inf"), n), filt
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{filt}: buckets not cumulative: {buckets}"
        assert [le for le, _ in buckets][:3] == [1e-6, 2.5e-6, 5e-6]
        assert buckets[-2][0] == 10.0
        assert 0 < total < 10, filt  # seconds, all of them together
    assert m['sluice_aggregator_filter_events_total{filter="slowpath",result="ok"}'] == 6
    assert m['sluice_aggregator_filter_events_total{filter="dropper",result="dropped"}'] == 6

    # More from b: its series grows by exactly that much, the others do not move.
    send(b, evs(4, "b2-"))
    m = a.metrics()
    assert client_series(m) == {"127.0.0.1": 15, "127.0.0.2": 11}
    assert histogram(m, "tagger")[2] == 16 + 2
    for c in (a1, a2, b):
        c.close()
    wait_for(lambda: a.metric(key(CONNS, "127.0.0.1")) == 0
             and a.metric(key(CONNS, "127.0.0.2")) == 0, what="client connections 0")
    # Closed, not forgotten (the default is an hour): the counts stay.
    assert client_series(a.metrics()) == {"127.0.0.1": 15, "127.0.0.2": 11}


def test_filter_histograms_are_exact_with_two_workers(start_agg, tmp_path):
    """Slices of 3 events on 2 workers, each adding its counts once per slice."""
    text = filters_config(tmp_path).replace("  workers: 1\n", "  workers: 2\n  batch_size: 3\n")
    a = start_agg(tmp_path, text)
    clients = [client_from(a.port, src) for src in ("127.0.0.1", "127.0.0.2")]
    for w in range(10):
        for k, c in enumerate(clients):
            c.send_window([dict(e, drop=e["seq"] == 0, slow=e["seq"] % 2 == 1)
                           for e in events(20, f"c{k}w{w}-")])
    for c in clients:
        assert c.read_raw(60) == ack(20) * 10
    m = a.metrics()
    assert client_series(m) == {"127.0.0.1": 200, "127.0.0.2": 200}
    # 400 events: dropper ran on 20 (seq 0), tagger on 380, slowpath on the 200 odd ones.
    for filt, n in {"dropper": 20, "tagger": 380, "slowpath": 200}.items():
        buckets, total, count = histogram(m, filt)
        assert count == n and buckets[-1][1] == n and total > 0, filt
    for c in clients:
        c.close()


def test_past_the_cap_new_clients_count_as_other(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(tmp_path, "  client_metrics_max: 2\n"))
    sent = {"127.0.0.1": 3, "127.0.0.2": 4, "127.0.0.3": 5, "127.0.0.4": 6}
    clients = {}
    for src, n in sent.items():
        clients[src] = client_from(a.port, src)
        send(clients[src], events(n, src))
    # The first two own a series for good; a known client keeps its own past the cap.
    send(clients["127.0.0.1"], events(10, "again"))
    m = a.metrics()
    assert client_series(m) == {"127.0.0.1": 13, "127.0.0.2": 4, "other": 11}
    assert m[key(ACKED, "other")] == 11
    assert m[key(CONNS, "other")] == 2
    assert m["sluice_aggregator_events_received_total"] == 28
    for c in clients.values():
        c.close()


def test_a_client_gone_for_forget_after_loses_its_series(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(
        tmp_path, "  client_metrics_max: 1\n  client_metrics_forget_after: 1s\n"))
    c = client_from(a.port, "127.0.0.1")
    send(c, events(3))
    c.close()
    # Still there while connected elsewhere? No other connection: forgotten after ~1 s.
    wait_for(lambda: key(EV, "127.0.0.1") not in a.metrics(), what="series forgotten")
    assert key(CONNS, "127.0.0.1") not in a.metrics()
    # Its slot is free again: the next client (another address) gets its own series,
    # not "other", and starts from its own count.
    d = client_from(a.port, "127.0.0.2")
    send(d, events(2))
    assert client_series(a.metrics()) == {"127.0.0.2": 2}
    # A connected client is never forgotten.
    e = client_from(a.port, "127.0.0.3")
    send(e, events(1))
    wait_for(lambda: key(CONNS, "other") in a.metrics(), what="other series")
    assert client_series(a.metrics()) == {"127.0.0.2": 2, "other": 1}
    d.close()
    e.close()


def test_mtls_clients_are_labelled_by_certificate_cn(start_agg, tmp_path, pki):
    a = start_agg(tmp_path, base_config(tmp_path, tls_input(pki, "optional")))
    with_cert = LJClient(a.port, ssl_context=client_ctx(pki, "client.pem"), timeout=DEADLINE)
    send(with_cert, events(4, "cert"))
    without = LJClient(a.port, ssl_context=client_ctx(pki), timeout=DEADLINE)
    send(without, events(2, "nocert"))
    m = a.metrics()
    # The CN when a certificate was presented, the address when not.
    assert client_series(m) == {"sluice-client": 4, "127.0.0.1": 2}
    assert m[key(CONNS, "sluice-client")] == 1
    with_cert.close()
    without.close()


def test_shipper_counts_reads_and_drops_per_input(tmp_path, procs):
    """Shipper side of the same issue: lines read and dropped per input `id`, by reason,
    next to the totals (an input that drops everything is told from one that reads nothing)."""
    web = tmp_path / "web"
    web.mkdir()
    s = Stack(tmp_path, procs, extra_input=f"""    exclude_lines: ['^DEBUG']
  - id: web
    paths: [{web}/*.log]
    start_position: beginning
    include_lines: ['GET']
    processors:
      - drop_event: {{when: {{contains: {{message: secret}}}}}}
""")
    s.start_aggregator()
    s.start_shipper()
    append_lines(s.logs / "app.log",
                 [("DEBUG " if i % 3 == 0 and i < 9 else "INFO ") + f"app {i}" for i in range(10)])
    append_lines(web / "a.log", ["GET /", "POST /x", "GET /secret", "PUT /y", "GET /a",
                                 "GET /secret/2", "DELETE /z", "GET /b"])
    events = s.wait_events(7 + 3)
    assert sorted(e["message"] for e in events if e["message"].startswith("GET")) == \
        ["GET /", "GET /a", "GET /b"]
    m = metrics_of(s.ship_metrics)
    want = {
        'sluice_shipper_input_lines_read_total{input="app"}': 10,
        'sluice_shipper_input_lines_read_total{input="web"}': 8,
        'sluice_shipper_input_lines_dropped_total{input="app",reason="exclude_lines"}': 3,
        'sluice_shipper_input_lines_dropped_total{input="app",reason="include_lines"}': 0,
        'sluice_shipper_input_lines_dropped_total{input="app",reason="processor"}': 0,
        'sluice_shipper_input_lines_dropped_total{input="web",reason="include_lines"}': 3,
        'sluice_shipper_input_lines_dropped_total{input="web",reason="processor"}': 2,
        'sluice_shipper_input_lines_dropped_total{input="web",reason="exclude_lines"}': 0,
        'sluice_shipper_input_lines_dropped_total{input="web",reason="stream"}': 0,
        "sluice_shipper_lines_read_total": 18,
        'sluice_shipper_lines_dropped_total{reason="processor"}': 2,
    }
    assert {k: m.get(k) for k in want} == want
    s.stop_all()

"""The `elasticsearch` output end to end, against a REAL OpenSearch 2.19
started once per module by tests/servers/opensearch (skipped when it cannot
start, unless SLUICE_REQUIRE_SERVERS is set: then the tests fail).

shipper -> aggregator -> OpenSearch: every line indexed exactly once (checked
by _count after _refresh and by fetching every document's message and
offset), searchable, @timestamp mapped as a date by the index template the
output installs, no @metadata indexed; an OpenSearch restart mid-stream loses
nothing; a mapping conflict lands in the dead-letter file; failover between
hosts; the file output beside. Each test uses its own index names (data
persists across runs of the server).

A few tests use tests/e2e/fake_es.py, a FAKE _bulk endpoint, only for faults a
real server cannot be made to produce on demand (a 429 on chosen items, a
whole-request 503, a proxy's 413 on bodies over its limit, a reply cut short),
where the exact requests are asserted.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest


from conftest import (AGGREGATOR, DEADLINE, ROOT, free_port, metrics_of, read_ndjson,
                      utc_days, wait_for, write_config)
from stack import Stack as BaseStack, append_origins
from fake_es import FakeES
from ljclient import LJClient

sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import started  # noqa: E402  (tests/servers/started.py)

SERVER = os.path.join(ROOT, "tests", "servers", "opensearch")
TEMPLATE = os.path.join(ROOT, "tests", "data", "es-template.json")
OUT = 'sluice_aggregator_output_events_total{output="elasticsearch",result="%s"}'
REQS = 'sluice_aggregator_es_bulk_requests_total{status="%s"}'
TS = "2026-11-27T06:00:00.000Z"  # events carry it: index names never depend on today


class OpenSearch:
    """A few REST calls on the real server (urllib: no client library)."""

    def __init__(self, url):
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method,
                                   headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def count(self, pattern):
        """Documents in the indices matching pattern, after a refresh (0 if none yet)."""
        self.req("POST", f"/{pattern}/_refresh")
        st, body = self.req("GET", f"/{pattern}/_count")
        return body["count"] if st == 200 else 0

    def docs(self, pattern):
        """Every document's _source (scrolled: no 10000-hit window limit)."""
        self.req("POST", f"/{pattern}/_refresh")
        st, body = self.req("POST", f"/{pattern}/_search?scroll=1m",
                            {"size": 5000, "sort": ["_doc"], "query": {"match_all": {}}})
        assert st == 200, body
        out = []
        while body["hits"]["hits"]:
            out += [h["_source"] for h in body["hits"]["hits"]]
            st, body = self.req("POST", "/_search/scroll",
                                {"scroll": "1m", "scroll_id": body["_scroll_id"]})
            assert st == 200, body
        self.req("DELETE", "/_search/scroll", {"scroll_id": body["_scroll_id"]})
        return out

    def delete(self, pattern):
        self.req("DELETE", f"/{pattern}")

    def stop(self):
        subprocess.run([SERVER, "stop"], check=True, capture_output=True, timeout=120)

    def start(self):
        """Starts again on the same port (the script reuses it; we insist)."""
        env = dict(os.environ, OPENSEARCH_PORT=str(self.port))
        r = subprocess.run([SERVER, "start"], capture_output=True, text=True, env=env,
                           timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.strip().splitlines()[-1] == self.url


@pytest.fixture(scope="module")
def opensearch():
    for url in started.opensearch():
        yield OpenSearch(url)


def closed_port():
    """A port nothing listens on (connections are refused at once)."""
    return free_port()


class Stack(BaseStack):
    """An aggregator with the elasticsearch output (and optionally the file
    output beside it), and a shipper pointed at it, all in tmp_path."""

    def __init__(self, tmp_path, procs, hosts, name, es_extra="", file_output=False,
                 ship_timeout="30s", shutdown_timeout="5s", template=True, index=None):
        self.dlq = tmp_path / "dlq"
        # Unique per run: the server keeps its data between runs.
        self.prefix = f"sluice-e2e-{name}-{uuid.uuid4().hex[:8]}"
        self.pattern = self.prefix + "-*"
        out = tmp_path / "events.ndjson"
        hosts_yaml = json.dumps(hosts)
        file_out = f'  - file: {{path: "{out}"}}\n' if file_output else ""
        # Without the test template, no template at all (the built-in one is
        # tests/e2e/test_ecs_opensearch.py's subject).
        tmpl = (f'template: {{name: sluice-test, file: "{TEMPLATE}"}}' if template
                else "manage_template: false")
        outputs = f"""  - elasticsearch:
      hosts: {hosts_yaml}
      index: "{index or self.prefix + '-%{+yyyy.MM.dd}'}"
      {tmpl}
      dead_letter_path: "{self.dlq}"
      backoff: {{init: 100ms, max: 1s}}
      timeout: 20s
{es_extra}
{file_out}"""
        super().__init__(tmp_path, procs, outputs=outputs, shutdown_timeout=shutdown_timeout,
                         ship_timeout=ship_timeout, flush_interval="50ms")


def acks(c, n):
    """The next n window ACKs, skipping the keepalive ACK 0s the aggregator sends
    while a window is held (input.keepalive, 5s) - e.g. during retries."""
    out = []
    while len(out) < n:
        a = c.read_acks(1)[0]
        if a[1]:
            out.append(a)
    return out


append_lines = append_origins


def origins(docs):
    """{(path, offset): [messages]} of indexed documents."""
    seen = {}
    for d in docs:
        seen.setdefault((d["log"]["file"]["path"], d["log"]["offset"]), []).append(d["message"])
    return seen


def wait_count(os_, pattern, n, timeout=DEADLINE):
    def enough():
        got = os_.count(pattern)
        assert got <= n, f"{got} documents indexed, expected {n}"
        return got == n
    wait_for(enough, timeout, interval=0.3, what=f"{n} documents in {pattern}")


def test_shipper_to_opensearch_every_line_once_with_file_output(tmp_path, procs, opensearch):
    s = Stack(tmp_path, procs, [opensearch.url], "once", file_output=True)
    a, b = s.logs / "a.log", s.logs / "b.log"
    expected = append_lines(a, [f"a-before-{i} GET /index.html 200" for i in range(1500)])
    expected.update(append_lines(b, [f"b-before-{i} \u00e9t\u00e9 \"quoted\" \\ tab\t"
                                     for i in range(700)]))
    s.start_aggregator()
    s.start_shipper()
    expected.update(append_lines(a, [f"a-after-{i} needle{i}" for i in range(300)]))
    n = len(expected)
    wait_count(opensearch, s.pattern, n)

    docs = opensearch.docs(s.pattern)
    got = origins(docs)
    dups = {k: v for k, v in got.items() if len(v) > 1}
    assert not dups, f"{len(dups)} lines indexed twice"
    assert {k: v[0] for k, v in got.items()} == expected
    assert all("@metadata" not in d for d in docs)
    assert all(d["@timestamp"].endswith("Z") for d in docs)

    # Searchable, and mapped by the template the output installed at start-up
    # (the template turns date detection off: only it can make @timestamp a date).
    st, hits = opensearch.req("POST", f"/{s.pattern}/_search",
                              {"query": {"match_phrase": {"message": "needle123"}}})
    assert st == 200 and hits["hits"]["total"]["value"] == 1
    assert hits["hits"]["hits"][0]["_source"]["message"] == "a-after-123 needle123"
    st, mapping = opensearch.req("GET", f"/{s.pattern}/_mapping")
    assert st == 200 and mapping
    for idx, m in mapping.items():
        assert idx.startswith(s.prefix + "-")
        props = m["mappings"]["properties"]
        assert props["@timestamp"]["type"] == "date"
        assert "@metadata" not in props
        assert m["mappings"]["_meta"]["managed_by"].startswith("sluice")
    st, _ = opensearch.req("GET", "/_index_template/sluice-test")
    assert st == 200

    # The file output beside got the same events (with @metadata: its default).
    events = wait_for(lambda: (e := read_ndjson(s.out)) and len(e) >= n and e,
                      what="file output")
    assert len(events) == n
    assert {(e["log"]["file"]["path"], e["log"]["offset"]): e["message"] for e in events} \
        == expected
    m = wait_for(lambda: (x := s.metrics()) and x.get(OUT % "ok") == n and x,
                 what="ok metric")
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == n
    assert m[OUT % "dead_letter"] == 0 and m[OUT % "retry"] == 0
    assert m[REQS % "200"] >= 1
    assert m['sluice_aggregator_es_bulk_request_seconds_count{output="elasticsearch"}'] \
        == m[REQS % "200"]
    s.stop_all()
    opensearch.delete(s.pattern)


class Writer(threading.Thread):
    """Appends numbered lines to a file in small bursts until stopped."""

    def __init__(self, path, tag):
        super().__init__(daemon=True)
        self.path, self.tag = path, tag
        self.expected = {}
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            self.expected.update(append_lines(self.path, [f"{self.tag}-{i + k}"
                                                          for k in range(10)]))
            i += 10
            time.sleep(0.05)

    def stop(self):
        self.halt.set()
        self.join()
        return self.expected


@pytest.mark.parametrize("when", ["idle", "busy"])
def test_opensearch_restart_mid_stream_loses_nothing(tmp_path, procs, opensearch, when):
    """idle: the server is stopped when nothing is in flight (the shipper has its
    ACKs), lines are written during the outage: every line exactly once.
    busy: stopped while lines stream in; a _bulk the server executed but whose
    reply was lost is re-sent, so duplicates are possible (at least once):
    every line at least once, duplicates counted and printed, not asserted."""
    # ship_timeout: the shipper must not give up on the aggregator during the outage
    # (it would resend windows the aggregator still holds: duplicates by design).
    s = Stack(tmp_path, procs, [opensearch.url], f"restart-{when}", ship_timeout="600s")
    log = s.logs / "app.log"
    s.start_aggregator()
    s.start_shipper()
    expected = append_lines(log, [f"first-{i}" for i in range(500)])
    wait_count(opensearch, s.pattern, 500)
    writer = None
    if when == "idle":
        wait_for(lambda: metrics_of(s.ship_metrics).get("sluice_shipper_events_acked_total")
                 == 500, what="every event acknowledged")
    else:
        writer = Writer(log, "stream")
        writer.start()
        time.sleep(1.0)
    opensearch.stop()
    try:
        if when == "idle":
            expected.update(append_lines(log, [f"outage-{i}" for i in range(500)]))
        # The output notices (connection refused) and keeps retrying.
        wait_for(lambda: s.metrics().get(REQS % "error", 0) >= 1, what="failed requests")
        time.sleep(1.0)
    finally:
        opensearch.start()
    if writer:
        time.sleep(1.0)
        expected.update(writer.stop())
    expected.update(append_lines(log, [f"last-{i}" for i in range(100)]))

    def all_there():
        opensearch.req("POST", f"/{s.pattern}/_refresh")
        if opensearch.count(s.pattern) < len(expected):
            return False
        return origins(opensearch.docs(s.pattern))

    got = wait_for(all_there, DEADLINE * 2, interval=0.5, what="every line indexed")
    missing = set(expected) - set(got)
    assert not missing, f"{len(missing)} lines lost"
    assert {k: v[0] for k, v in got.items()} == expected
    dups = sum(len(v) - 1 for v in got.values())
    print(f"restart ({when}): {len(expected)} lines, {dups} duplicate(s)")
    if when == "idle":
        assert dups == 0
    assert s.metrics()[OUT % "retry"] >= 1
    s.stop_all()
    opensearch.delete(s.pattern)


def test_mapping_conflict_goes_to_dead_letter_file(tmp_path, procs, opensearch):
    s = Stack(tmp_path, procs, [opensearch.url], "dlq")
    s.start_aggregator()
    ts = "2026-11-27T06:00:00.123Z"
    c = LJClient(s.agg_port)
    t0 = time.time()
    # "code" is a long in the template; an object there is a mapping error (400).
    c.send_window([{"@timestamp": ts, "message": f"good-{i}", "code": i,
                    "@metadata": {"beat": "t"}} for i in range(3)])
    assert acks(c, 1) == [(b"2", 3)]
    bad = {"@timestamp": ts, "message": "bad", "code": {"a": 1}}
    c.send_window([{"@timestamp": ts, "message": "good-3", "code": 3},
                   dict(bad, **{"@metadata": {"beat": "t"}}),
                   {"@timestamp": ts, "message": "good-4", "code": 4}])
    assert acks(c, 1) == [(b"2", 3)]  # dead-lettered counts as delivered
    wait_count(opensearch, s.pattern, 5)
    assert sorted(d["message"] for d in opensearch.docs(s.pattern)) == \
        [f"good-{i}" for i in range(5)]

    files = list(s.dlq.iterdir())
    # Dead letters are filed under the day they were written.
    assert len(files) == 1
    assert files[0].name in utc_days(t0, time.time(), "dlq-%Y.%m.%d.ndjson")
    lines = read_ndjson(files[0])
    assert len(lines) == 1
    d = lines[0]
    assert d["event"] == bad                      # as sent, without @metadata
    assert d["status"] == 400
    assert d["error"]["type"] == "mapper_parsing_exception"
    assert "code" in d["error"]["reason"]
    assert d["index"] == s.prefix + "-2026.11.27"
    assert d["time"].endswith("Z")
    m = s.metrics()
    assert m[OUT % "dead_letter"] == 1
    assert m[OUT % "retry"] == 0
    # ok counts indexed events only; the dead-lettered one is counted apart.
    assert m[OUT % "ok"] == 5
    assert "written to the dead-letter file" in s.aggregator.logtext()
    c.sock.close()
    s.stop_all()
    opensearch.delete(s.pattern)


def test_create_with_metadata_id_resend_is_not_duplicated(tmp_path, procs, opensearch):
    """op_type create + @metadata._id: a window sent again (as a shipper does
    after a lost ACK) is answered 409 per item, which counts as indexed."""
    s = Stack(tmp_path, procs, [opensearch.url], "create", es_extra="      op_type: create")
    s.start_aggregator()
    window = [{"@timestamp": "2026-11-27T06:00:00.000Z", "message": f"m{i}",
               "@metadata": {"_id": f"id-{i}"}} for i in range(4)]
    c = LJClient(s.agg_port)
    c.send_window(window)
    assert acks(c, 1) == [(b"2", 4)]
    c.send_window(window)
    assert acks(c, 1) == [(b"2", 4)]
    wait_count(opensearch, s.pattern, 4)
    st, body = opensearch.req("GET", f"/{s.prefix}-2026.11.27/_doc/id-2")
    assert st == 200 and body["_source"]["message"] == "m2"
    m = s.metrics()
    assert m[OUT % "dead_letter"] == 0 and m[OUT % "retry"] == 0
    assert not s.dlq.exists()
    c.sock.close()
    s.stop_all()
    opensearch.delete(s.pattern)


def test_data_stream_with_create_and_its_template(tmp_path, procs, opensearch):
    """data_stream: true sends `create` into a data stream made by the template
    the output installs; an event without @timestamp is rejected (400) into the
    dead-letter file."""
    name = f"sluice-ds-{uuid.uuid4().hex[:8]}"
    tmpl = tmp_path / "ds.json"
    tmpl.write_text(json.dumps({"index_patterns": [name], "data_stream": {}, "priority": 300,
                                "template": {"settings": {"number_of_replicas": 0}}}))
    s = Stack(tmp_path, procs, [opensearch.url], "ds", template=False, index=name,
              es_extra=f"""\
      data_stream: true
      template: {{name: {name}, file: "{tmpl}"}}""")
    s.start_aggregator()
    c = LJClient(s.agg_port)
    c.send_window([{"@timestamp": "2026-11-27T06:00:00.123Z", "message": f"m{i}"}
                   for i in range(7)] + [{"message": "no timestamp"}])
    assert acks(c, 1) == [(b"2", 8)]
    wait_count(opensearch, name, 7)
    st, body = opensearch.req("GET", f"/_data_stream/{name}")
    assert st == 200 and body["data_streams"][0]["template"] == name
    dl = read_ndjson(next(s.dlq.iterdir()))
    assert [d["event"]["message"] for d in dl] == ["no timestamp"]
    assert dl[0]["status"] == 400 and dl[0]["index"] == name
    c.sock.close()
    s.stop_all()
    opensearch.req("DELETE", f"/_data_stream/{name}")
    opensearch.req("DELETE", f"/_index_template/{name}")


def test_failover_to_the_next_host(tmp_path, procs, opensearch):
    dead = f"http://127.0.0.1:{closed_port()}"
    s = Stack(tmp_path, procs, [dead, opensearch.url], "failover")
    s.start_aggregator()
    c = LJClient(s.agg_port)
    for w in range(4):
        c.send_window([{"@timestamp": "2026-11-27T06:00:00.000Z", "message": f"w{w}-{i}"}
                       for i in range(50)])
        assert acks(c, 1) == [(b"2", 50)]
    wait_count(opensearch, s.pattern, 200)
    m = s.metrics()
    assert m[REQS % "error"] >= 1     # the dead host was tried, then skipped
    assert m[REQS % "200"] >= 1
    assert m[OUT % "ok"] == 200
    c.sock.close()
    s.stop_all()
    opensearch.delete(s.pattern)


def test_shutdown_deadline_fails_the_batch_and_exits_zero(tmp_path, procs):
    """Nothing answers: on SIGTERM the output gives up at shutdown_timeout, the
    window is not ACKed (the client resends it to the next aggregator)."""
    s = Stack(tmp_path, procs, [f"http://127.0.0.1:{closed_port()}"], "deadline",
              shutdown_timeout="1s", template=False)
    s.start_aggregator()
    c = LJClient(s.agg_port, timeout=5)
    c.send_window([{"message": "never"}])
    wait_for(lambda: s.metrics().get(REQS % "error", 0) >= 1, what="a failed request")
    t0 = time.monotonic()
    rc = s.aggregator.stop(signal.SIGTERM)
    assert rc == 0, s.aggregator.logtext()[-3000:]
    assert time.monotonic() - t0 < 10
    # Only keepalive ACK 0s may have come; then the connection closed.
    got = []
    with pytest.raises((ConnectionError, TimeoutError, OSError)):
        while True:
            got += c.read_acks(1, timeout=1)
    assert all(seq == 0 for _, seq in got), got
    c.sock.close()


def test_test_config_touches_no_network_and_reports_errors(tmp_path):
    good = write_config(tmp_path / "good.yml", f"""
input: {{listen: "127.0.0.1:0"}}
outputs:
  - elasticsearch:
      hosts: ["127.0.0.1:{closed_port()}"]
      template: {{name: t, file: "{TEMPLATE}"}}
""")
    t0 = time.monotonic()
    r = subprocess.run([AGGREGATOR, "-t", "-c", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "configuration OK\n", r.stderr
    assert time.monotonic() - t0 < 10
    notjson = tmp_path / "t.json"
    notjson.write_text("{nope")
    # Option-table errors first (types, choices); checks that need the options read
    # (the template file's content) once those are right.
    bad = write_config(tmp_path / "bad.yml", f"""
outputs:
  - elasticsearch:
      template: {{name: t, file: "{notjson}"}}
      op_type: upsert
""")
    r = subprocess.run([AGGREGATOR, "-t", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{bad}:5:16: outputs[0] (elasticsearch): option 'op_type'" in r.stderr
    bad = write_config(tmp_path / "bad.yml", f"""
outputs:
  - elasticsearch:
      template: {{name: t, file: "{notjson}"}}
      op_type: create
""")
    r = subprocess.run([AGGREGATOR, "-t", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{bad}:4:33: outputs[0] (elasticsearch): template: '{notjson}' is not a JSON " \
           f"object" in r.stderr


# ---- FAKE server: faults a real one cannot produce on demand --------------------

def fake_stack(tmp_path, procs, fake):
    s = Stack(tmp_path, procs, [fake.url], "fake")
    s.start_aggregator()
    return s


def test_fake_per_item_429_retries_only_those_items(tmp_path, procs):
    fake = FakeES([{"item_status": {1: 429, 3: 429}}]).start()
    try:
        s = fake_stack(tmp_path, procs, fake)
        c = LJClient(s.agg_port)
        c.send_window([{"@timestamp": TS, "message": f"e{i}", "@metadata": {"beat": "t"}}
                       for i in range(5)])
        assert acks(c, 1) == [(b"2", 5)]
        assert len(fake.requests) == 2
        assert [d["message"] for _, d in fake.requests[0]] == ["e0", "e1", "e2", "e3", "e4"]
        assert [d["message"] for _, d in fake.requests[1]] == ["e1", "e3"]
        assert sorted(d["message"] for d in fake.docs()) == ["e0", "e1", "e2", "e3", "e4"]
        action = fake.requests[0][0][0]
        assert action == {"index": {"_index": s.prefix + "-" + TS[:10].replace("-", ".")}}
        h = fake.headers[0]
        assert h["Content-Type"] == "application/x-ndjson"
        assert h["Content-Encoding"] == "gzip"
        m = s.metrics()
        assert m[OUT % "retry"] == 2
        assert m[REQS % "200"] == 2
        assert m[OUT % "ok"] == 5
        c.sock.close()
        s.stop_all()
    finally:
        fake.stop()


def test_fake_whole_request_503_retries_everything_once(tmp_path, procs):
    fake = FakeES([{"status": 503}]).start()
    try:
        s = fake_stack(tmp_path, procs, fake)
        c = LJClient(s.agg_port)
        c.send_window([{"message": f"e{i}"} for i in range(5)])
        assert acks(c, 1) == [(b"2", 5)]
        assert [len(r) for r in fake.requests] == [5, 5]
        assert sorted(d["message"] for d in fake.docs()) == ["e0", "e1", "e2", "e3", "e4"]
        m = s.metrics()
        assert m[OUT % "retry"] == 5
        assert m[REQS % "503"] == 1 and m[REQS % "200"] == 1
        c.sock.close()
        s.stop_all()
    finally:
        fake.stop()


def messages(request):
    return [d["message"] for _, d in request]


def test_fake_413_splits_the_request_in_halves_then_sends_full_size_again(tmp_path, procs):
    """A proxy in front answers 413 to a _bulk of more than 2 items: the request
    is sent again as two halves, recursively, until each part passes; every
    event is indexed once and counted ok, none is dead-lettered. Nothing is cut
    for good: the next window goes as one request of all its events. An event
    refused on its own is dead-lettered with status 413, never counted ok."""
    fake = FakeES(max_items=2).start()
    try:
        # One worker: the order of the requests is then exact.
        s = Stack(tmp_path, procs, [fake.url], "fake", es_extra="      workers: 1")
        s.start_aggregator()
        c = LJClient(s.agg_port)
        c.send_window([{"message": f"a{i}"} for i in range(5)])
        assert acks(c, 1) == [(b"2", 5)]
        assert [messages(r) for r in fake.requests] == [
            ["a0", "a1", "a2", "a3", "a4"],     # 413
            ["a0", "a1", "a2"],                 # 413
            ["a0", "a1"], ["a2"], ["a3", "a4"]]
        assert fake.statuses == [413, 413, 200, 200, 200]
        assert sorted(d["message"] for d in fake.docs()) == [f"a{i}" for i in range(5)]

        # The proxy's limit is lifted: the next window goes whole, in one request.
        fake.max_items = None
        c.send_window([{"message": f"b{i}"} for i in range(5)])
        assert acks(c, 1) == [(b"2", 5)]
        assert [messages(r) for r in fake.requests[5:]] == [[f"b{i}" for i in range(5)]]
        assert fake.statuses[5:] == [200]

        # An event over the limit on its own: split off, refused again, dead-lettered.
        fake.max_bytes = 2000
        big = {"message": "big-" + "x" * 3000}
        c.send_window([big, {"message": "small"}])
        assert acks(c, 1) == [(b"2", 2)]
        assert [messages(r) for r in fake.requests[6:]] == [
            [big["message"], "small"], [big["message"]], ["small"]]
        assert fake.statuses[6:] == [413, 413, 200]

        got = sorted(d["message"] for d in fake.docs())
        assert got == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] +
                             ["small"])
        files = list(s.dlq.iterdir())
        assert len(files) == 1
        lines = read_ndjson(files[0])
        assert len(lines) == 1
        assert lines[0]["event"] == big
        assert lines[0]["status"] == 413
        m = s.metrics()
        assert m[OUT % "ok"] == 11
        assert m[OUT % "dead_letter"] == 1
        assert m.get(OUT % "failed", 0) == 0
        assert m.get(OUT % "dropped", 0) == 0
        assert m[OUT % "retry"] == (5 + 3) + 2   # each split request's items, sent again
        assert m[REQS % "413"] == 4 and m[REQS % "200"] == 5
        c.sock.close()
        s.stop_all()
    finally:
        fake.stop()


def test_fake_truncated_reply_is_retried_whole_never_counted_ok(tmp_path, procs):
    """200 replies that are not a whole bulk reply for the items sent - cut off
    after "errors":false (with a length, and by EOF), without items, with fewer
    items - say nothing about the items: the request is sent again whole, and
    the window is ACKed only after a real reply."""
    fake = FakeES([{"raw": '{"took":1,"errors":false,'},
                   {"raw": '{"took":1,"errors":false,"items":[{"index":{"status":201}}',
                    "eof": True},
                   {"raw": '{"took":1,"errors":false}'},
                   {"raw": '{"took":1,"errors":false,"items":[{"index":{"status":201}}]}'},
                   {}]).start()
    try:
        s = fake_stack(tmp_path, procs, fake)
        c = LJClient(s.agg_port)
        c.send_window([{"message": f"e{i}"} for i in range(5)])
        assert acks(c, 1) == [(b"2", 5)]
        assert [messages(r) for r in fake.requests] == [[f"e{i}" for i in range(5)]] * 5
        assert sorted(d["message"] for d in fake.docs()) == [f"e{i}" for i in range(5)]
        m = s.metrics()
        assert m[OUT % "ok"] == 5
        assert m[OUT % "retry"] == 4 * 5
        assert m.get(OUT % "failed", 0) == 0
        assert m[REQS % "200"] == 5
        assert s.aggregator.logtext().count("unusable _bulk reply") == 4
        c.sock.close()
        s.stop_all()
    finally:
        fake.stop()

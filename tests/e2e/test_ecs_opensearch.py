"""ECS compatibility end to end, against the REAL OpenSearch of
tests/servers/opensearch (started once per module, as in test_elasticsearch.py).

For each mode - `v8` (the default: no ecs_compatibility anywhere in the
config) and `disabled` (legacy names) - the documented recipe of
docs/filters.md and docs/output-elasticsearch.md runs on an Apache access log
corpus sent as Filebeat sends it (with Beats' `agent` object): grok
COMBINEDAPACHELOG, date, and the elasticsearch output installing its built-in
index template (manage_template, the default). Then the queries a Kibana user
makes, each answered with the exact count computed from the corpus:

- a range on @timestamp (the date filter's, from the log line),
- a term on the status code as a number,
- a CIDR term on the client address,
- a full-text match on the request,

and every event indexed (nothing dead-lettered: in legacy mode the recipe
moves Beats' `agent` object to `beat`, so grok's user agent string fits the
template). A document the template refuses is dead-lettered, and the log line
says why (the server's reason).
"""

import datetime
import ipaddress
import json
import random
import re
import uuid

import pytest

from conftest import AGGREGATOR, free_port, metrics_of, wait_for, wait_port, write_config
from ljclient import LJClient
from test_elasticsearch import opensearch  # noqa: F401  (the module-scoped server fixture)

OUT = 'sluice_aggregator_output_events_total{output="elasticsearch",result="%s"}'
N = 600
T0 = datetime.datetime(2026, 11, 27, 6, 0, 0, tzinfo=datetime.timezone.utc)
PATHS = ["/index.html", "/static/app.js", "/api/v1/items/{n}", "/search?q=kibana&page={n}",
         "/docs/kibana/intro.html", "/login"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
          "curl/8.4.0", "Go-http-client/1.1"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def corpus():
    """N combined-log lines and, for each, what it says (deterministic)."""
    rnd = random.Random(11)
    rows = []
    for i in range(N):
        kind = rnd.random()
        if kind < 0.25:
            client = f"203.0.113.{rnd.randint(1, 254)}"
        elif kind < 0.9:
            client = f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        else:
            client = f"host{rnd.randint(1, 9)}.example.net"
        when = T0 + datetime.timedelta(seconds=37 * i)
        # Some lines in +0100: the date filter must bring them to UTC.
        off = 60 if i % 7 == 0 else 0
        local = when + datetime.timedelta(minutes=off)
        stamp = (f"{local.day:02d}/{MONTHS[local.month - 1]}/{local.year}:"
                 f"{local:%H:%M:%S} {'+0100' if off else '+0000'}")
        status = rnd.choice([200, 200, 200, 304, 404, 500])
        size = rnd.choice(["-", str(rnd.randint(100, 99999))])
        path = rnd.choice(PATHS).format(n=i)
        agent = rnd.choice(AGENTS)
        line = (f'{client} - - [{stamp}] "GET {path} HTTP/1.1" {status} {size} '
                f'"https://example.com/" "{agent}"')
        rows.append(dict(line=line, client=client, when=when, status=status, path=path,
                         agent=agent))
    return rows


AGENT = {"type": "filebeat", "version": "8.15.0", "name": "web-1",
         "id": "0e2b5cd5-0b3a-4c5f-9d27-4c1e8f6a7b10",
         "ephemeral_id": "7f3c1a2e-5d4b-4e6f-8a9b-0c1d2e3f4a5b"}


def beats_event(row, k):
    """The event as Filebeat 8 sends it: Beats' own `agent` object included."""
    return {"@timestamp": "2026-12-01T00:00:00.000Z", "message": row["line"],
            "log": {"file": {"path": "/var/log/apache2/access.log", "inode": "1311",
                             "device_id": "64768"}, "offset": k * 200},
            "input": {"type": "filestream"}, "host": {"name": "web-1"},
            "agent": AGENT,
            "ecs": {"version": "8.0.0"}}


# The recipes of docs/filters.md, as the docs show them.
FILTERS = {
    "v8": """\
    - grok: {patterns: ['%{COMBINEDAPACHELOG}']}
    - date: {match: [timestamp, "dd/MMM/yyyy:HH:mm:ss Z"]}
    - mutate: {remove_fields: [timestamp]}
""",
    "disabled": """\
    - mutate: {rename: {agent: beat}}
    - grok: {patterns: ['%{COMBINEDAPACHELOG}']}
    - date: {match: [timestamp, "dd/MMM/yyyy:HH:mm:ss Z"]}
    - mutate: {remove_fields: [timestamp]}
""",
}

# Field names per mode, as the queries of a Kibana user name them.
NAMES = {
    "v8": dict(status="http.response.status_code", client="source.ip",
               request="url.original.text", agent="user_agent.original.text"),
    "disabled": dict(status="response", client="clientip", request="request", agent="agent"),
}


class Run:
    def __init__(self, tmp_path, procs, os_url, mode):
        self.uid = uuid.uuid4().hex[:8]
        self.prefix = f"sluice-ecs-{mode}-{self.uid}"
        self.pattern = self.prefix + "-*"
        self.template = f"sluice-e2e-ecs-{self.uid}"
        self.dlq = tmp_path / "dlq"
        self.port, self.mport = free_port(), free_port()
        pipeline_mode = "" if mode == "v8" else "  ecs_compatibility: disabled\n"
        self.cfg = write_config(tmp_path / "aggregator.yml", f"""
input:
  listen: 127.0.0.1:{self.port}
pipeline:
  workers: 2
{pipeline_mode}  filters:
{FILTERS[mode]}
outputs:
  - elasticsearch:
      hosts: ["{os_url}"]
      index: "{self.prefix}-%{{+yyyy.MM.dd}}"
      template_name: {self.template}
      dead_letter_path: "{self.dlq}"
      backoff: {{init: 100ms, max: 1s}}
metrics:
  listen: 127.0.0.1:{self.mport}
shutdown_timeout: 5s
""")
        self.agg = procs([AGGREGATOR, "-c", str(self.cfg)], str(tmp_path / "aggregator.log"))
        wait_port(self.port, self.agg)

    def send(self, events):
        c = LJClient(self.port, timeout=60)
        for i in range(0, len(events), 100):
            window = events[i:i + 100]
            c.send_window(window)
            got = []
            while not got:
                got = [a for a in c.read_acks(1) if a[1]]  # skip keepalive ACK 0s
            assert got[0][1] == len(window)
        c.sock.close()


def count(os_, pattern, query):
    st, body = os_.req("POST", f"/{pattern}/_count", {"query": query})
    assert st == 200, body
    return body["count"]


def mapping_type(props, dotted):
    m = {"properties": props}
    for seg in dotted.split("."):
        m = m["properties"][seg]
    return m["type"]


@pytest.mark.parametrize("mode", ["v8", "disabled"])
def test_apache_corpus_queries_as_kibana_users_make_them(tmp_path, procs, opensearch, mode):
    rows = corpus()
    r = Run(tmp_path, procs, opensearch.url, mode)
    try:
        r.send([beats_event(row, k) for k, row in enumerate(rows)])
        wait_for(lambda: opensearch.count(r.pattern) == N, timeout=120, interval=0.5,
                 what=f"{N} documents")
        m = metrics_of(r.mport)
        assert m[OUT % "ok"] == N
        assert m.get(OUT % "dead_letter", 0) == 0
        assert not r.dlq.exists() or not list(r.dlq.iterdir())

        # The template sluice installed (it was not there: HEAD 404, then PUT).
        st, t = opensearch.req("GET", f"/_index_template/{r.template}")
        assert st == 200
        body = t["index_templates"][0]["index_template"]
        assert body["index_patterns"] == [r.prefix + "-*"]
        assert body["_meta"]["ecs_compatibility"] == mode
        st, mapping = opensearch.req("GET", f"/{r.pattern}/_mapping")
        props = next(iter(mapping.values()))["mappings"]["properties"]
        names = NAMES[mode]
        assert mapping_type(props, "@timestamp") == "date"
        assert mapping_type(props, names["status"]) == "long"
        assert mapping_type(props, names["client"]) == "ip"
        # Filebeat 8's (and sluice-shipper's) identity fields: keywords in both modes.
        assert mapping_type(props, "log.file.inode") == "keyword"
        assert mapping_type(props, "log.file.device_id") == "keyword"
        beat = "agent" if mode == "v8" else "beat"
        assert mapping_type(props, beat + ".id") == "keyword"
        assert mapping_type(props, beat + ".ephemeral_id") == "keyword"

        # One document, whole: the shape each mode gives.
        st, hit = opensearch.req("POST", f"/{r.pattern}/_search", {
            "size": 1, "query": {"match_phrase": {"message": rows[0]["line"]}}})
        doc = hit["hits"]["hits"][0]["_source"]
        want_ts = rows[0]["when"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert doc["@timestamp"] == want_ts
        if mode == "v8":
            assert doc["http"]["response"]["status_code"] == rows[0]["status"]
            assert doc["user_agent"]["original"] == rows[0]["agent"]
            assert doc["agent"] == AGENT
            assert doc["url"]["original"] == rows[0]["path"]
            assert "clientip" not in doc and "timestamp" not in doc
        else:
            assert doc["response"] == str(rows[0]["status"])
            assert doc["agent"] == '"' + rows[0]["agent"] + '"'
            assert doc["beat"] == AGENT
            assert doc["request"] == rows[0]["path"]

        # Range on @timestamp: the first hour (lines in +0100 included, in UTC).
        lo, hi = T0, T0 + datetime.timedelta(hours=1)
        want = sum(1 for row in rows if lo <= row["when"] < hi)
        assert 0 < want < N
        assert count(opensearch, r.pattern, {"range": {"@timestamp": {
            "gte": "2026-11-27T06:00:00Z", "lt": "2026-11-27T07:00:00Z"}}}) == want

        # Term on the status code, as a number.
        want = sum(1 for row in rows if row["status"] == 404)
        assert want > 0
        assert count(opensearch, r.pattern, {"term": {names["status"]: 404}}) == want
        want = sum(1 for row in rows if row["status"] >= 500)
        assert count(opensearch, r.pattern, {"range": {names["status"]: {"gte": 500}}}) == want

        # CIDR on the client address (host names are no address: in no network).
        net = ipaddress.ip_network("203.0.113.0/24")
        want = sum(1 for row in rows
                   if re.fullmatch(r"[0-9.]+", row["client"])
                   and ipaddress.ip_address(row["client"]) in net)
        assert want > 0
        assert count(opensearch, r.pattern, {"term": {names["client"]: "203.0.113.0/24"}}) == want
        want = sum(1 for row in rows if row["client"].startswith("10."))
        assert count(opensearch, r.pattern, {"term": {names["client"]: "10.0.0.0/8"}}) == want

        # Full text on the request and on the user agent.
        want = sum(1 for row in rows if "kibana" in row["path"])
        assert want > 0
        assert count(opensearch, r.pattern, {"match": {names["request"]: "kibana"}}) == want
        want = sum(1 for row in rows if row["agent"].startswith("curl/"))
        assert count(opensearch, r.pattern, {"match": {names["agent"]: "curl"}}) == want

        # A document the template refuses (bytes is a long) goes to the dead-letter
        # file, and the log says why, in the server's words.
        bad = beats_event(rows[1], N)
        bad["message"] = "not an access line"
        bad["bytes" if mode == "disabled" else "http"] = (
            {"x": 1} if mode == "disabled" else {"response": {"status_code": {"x": 1}}})
        r.send([bad])
        wait_for(lambda: metrics_of(r.mport).get(OUT % "dead_letter", 0) == 1,
                 what="one dead letter")
        log = r.agg.logtext()
        assert re.search(r"1 event\(s\) rejected by the server were written to the dead-letter "
                         r"file \(the first: status 400, index " + re.escape(r.prefix) +
                         r"-2026\.12\.01: mapper_parsing_exception: failed to parse field "
                         r"\[(bytes|http\.response\.status_code)\]", log), log[-2000:]
        letters = [json.loads(x) for f in r.dlq.iterdir() for x in f.read_text().splitlines()]
        assert len(letters) == 1 and letters[0]["status"] == 400
        assert r.agg.stop() == 0
    finally:
        opensearch.delete(r.pattern)
        opensearch.req("DELETE", f"/_index_template/{r.template}")

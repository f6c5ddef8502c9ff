"""The aggregator's filters end to end: the real shipper tails Apache and JSON
lines, the real aggregator parses them with grok, date, mutate, json, kv and
drop (with conditions), and the parsed fields land exactly in the file output."""

from conftest import AGGREGATOR, SHIPPER, free_port, metrics_of, read_ndjson, wait_for
from conftest import wait_port, write_config
from stack import append_lines

APACHE = ('203.0.113.9 - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.1" '
          '200 2326 "http://www.example.com/start.html" "Mozilla/5.0 (X11; Linux x86_64)"')


def test_grok_date_mutate_json_kv_drop_with_conditions(tmp_path, procs):
    port, mport, sport = free_port(), free_port(), free_port()
    out = tmp_path / "events.ndjson"
    logs = tmp_path / "logs"
    logs.mkdir()
    agg_cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{port}"}}
pipeline:
  workers: 2
  filters:
    - drop: {{when: {{field: message, matches: '^DEBUG'}}}}
    - grok:
        patterns: ['%{{COMBINEDAPACHELOG}}']
        overwrite: [agent]  # the Beats agent object gives way to the user agent
        ecs_compatibility: disabled  # legacy names (ECS: tests/e2e/test_ecs_opensearch.py)
        when: {{field: fields.type, equals: apache}}
    - date:
        match: [timestamp, "dd/MMM/yyyy:HH:mm:ss Z"]
        when: {{field: fields.type, equals: apache}}
    - mutate:
        convert: {{response: integer, bytes: integer}}
        lowercase: [verb]
        add_fields: {{route: "%{{[fields][type]}}-%{{verb}}"}}
        remove_fields: [ident]
        when: {{field: fields.type, equals: apache}}
    - json: {{field: message, target: doc, when: {{field: fields.type, equals: json}}}}
    - kv: {{field: "[doc][kv]", target: kv, when: {{field: fields.type, equals: json}}}}
outputs:
  - file: {{path: "{out}", metadata: false}}
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    ship_cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - id: apache
    paths: ["{logs}/access.log"]
    start_position: beginning
    fields: {{type: apache}}
  - id: json
    paths: ["{logs}/app.json"]
    start_position: beginning
    fields: {{type: json}}
output: {{hosts: ["127.0.0.1:{port}"], flush_interval: 100ms}}
registry: {{path: "{tmp_path}/registry"}}
metrics: {{listen: "127.0.0.1:{sport}"}}
""")
    append_lines(logs / "access.log", [APACHE, "DEBUG this one is dropped", "not an apache line"])
    append_lines(logs / "app.json", ['{"level":"info","kv":"user=alice id=42"}'])
    agg = procs([AGGREGATOR, "-c", str(agg_cfg)], str(tmp_path / "aggregator.log"))
    wait_port(port, agg)
    procs([SHIPPER, "-c", str(ship_cfg)], str(tmp_path / "shipper.log"))
    wait_for(lambda: len(read_ndjson(out)) == 3, what="3 events (one dropped)")
    events = {e["message"]: e for e in read_ndjson(out)}
    assert "DEBUG this one is dropped" not in events

    a = events[APACHE]
    assert a["clientip"] == "203.0.113.9"
    assert a["auth"] == "frank"
    assert "ident" not in a
    assert a["verb"] == "get"
    assert a["request"] == "/apache_pb.gif?x=1"
    assert a["httpversion"] == "1.1"
    assert a["response"] == 200 and a["bytes"] == 2326
    assert a["referrer"] == '"http://www.example.com/start.html"'
    assert a["agent"] == '"Mozilla/5.0 (X11; Linux x86_64)"'
    assert a["@timestamp"] == "2026-10-10T20:55:36.000Z"
    assert a["route"] == "apache-get"
    assert "@metadata" not in a
    assert "tags" not in a

    bad = events["not an apache line"]
    assert bad["tags"] == ["_grokparsefailure"]  # date: no timestamp field, nothing to do

    j = next(e for e in events.values() if e["fields"]["type"] == "json")
    assert j["doc"] == {"level": "info", "kv": "user=alice id=42"}
    assert j["kv"] == {"user": "alice", "id": "42"}

    m = metrics_of(mport)
    assert m['sluice_aggregator_filter_events_total{filter="drop",result="dropped"}'] == 1
    assert m['sluice_aggregator_filter_events_total{filter="grok",result="ok"}'] == 1
    assert m['sluice_aggregator_filter_events_total{filter="grok",result="error"}'] == 1
    assert m["sluice_aggregator_events_received_total"] == 4
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 3

"""Processors on the shipper, in Filebeat's names and semantics: an input's own
chain runs first, then the global one; drop_event is counted; the events that
arrive carry exactly what the chain made of them."""

import subprocess

from conftest import SHIPPER
from stack import Stack, append_lines


def test_input_then_global_processors(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="""    processors:
      - decode_json_fields: {fields: [message], target: ""}
      - drop_event:
          when:
            or:
              - equals: {level: debug}
              - range: {latency_ms: {gte: 1000}}
      - rename: {fields: [{from: user, to: user.name}], ignore_missing: true}
""", extra_top="""processors:
  - add_fields: {target: "", fields: {env: prod}}
  - add_fields: {fields: {seen_env: true}, when: {equals: {env: prod}}}
  - drop_fields: {fields: [agent, ecs, input], ignore_missing: true}
  - add_host_metadata: {netinfo.enabled: false}
""")
    s.start_aggregator()
    s.start_shipper()
    lines = []
    for i in range(300):
        level = "debug" if i % 10 == 0 else "info"
        latency = 5000 if i % 7 == 0 else i
        lines.append(f'{{"level":"{level}","latency_ms":{latency},"n":{i},"user":"u{i}"}}')
    lines.append("not json at all")
    append_lines(s.logs / "app.log", lines)
    kept = [i for i in range(300) if i % 10 != 0 and i % 7 != 0]
    events = s.wait_events(len(kept) + 1)
    dropped = 301 - len(events)
    assert s.ship_metric('sluice_shipper_lines_dropped_total{reason="processor"}') == dropped
    plain = [e for e in events if e["message"] == "not json at all"]
    assert len(plain) == 1 and "n" not in plain[0]
    got = sorted(e["n"] for e in events if "n" in e)
    assert got == kept
    for e in events:
        assert e["env"] == "prod" and e["fields"] == {"seen_env": True}
        assert "agent" not in e and "ecs" not in e and "input" not in e
        assert e["host"]["os"]["type"] == "linux" and "ip" not in e["host"]
        assert e["log"]["file"]["path"].endswith("app.log")
        if "n" in e:
            assert e["user"] == {"name": f"u{e['n']}"}
            assert e["level"] == "info"
    s.stop_all()


def test_add_kubernetes_metadata_on_a_log_input(tmp_path, procs):
    cid = "ab" * 32
    s = Stack(tmp_path, procs, paths=[str(tmp_path / "logs" / "*.log")], extra_top="""processors:
  - add_kubernetes_metadata: ~
""")
    s.start_aggregator()
    s.start_shipper()
    append_lines(s.logs / f"api-5_prod_srv-{cid}.log", ["one", "two"])
    events = s.wait_events(2)
    for e in events:
        assert e["kubernetes"] == {"pod": {"name": "api-5"}, "namespace": "prod",
                                   "container": {"name": "srv"}}
        assert e["container"] == {"id": cid}
        assert e["input"]["type"] == "filestream"
    s.stop_all()


def test_processor_config_errors(tmp_path):
    cfg = tmp_path / "s.yml"
    cfg.write_text(f"inputs:\n  - paths: [{tmp_path}/x.log]\n    processors:\n"
                   f"      - drop_event: {{when: {{equals: {{a: 1}}, contains: {{b: c}}}}}}\n"
                   f"registry: {{path: {tmp_path}/reg}}\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "inputs[0].processors[0].drop_event.when: a condition is a map with one of" in r.stderr


def test_ndjson_parser_on_a_container_input(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="""    type: container
    parsers:
      - ndjson: {message_key: msg, add_error_key: true, overwrite_keys: true}
    processors:
      - drop_event: {when: {equals: {level: debug}}}
""")
    s.start_aggregator()
    s.start_shipper()
    lines = []
    for i in range(50):
        body = (f'{{"msg":"req {i}","level":"{"debug" if i % 5 == 0 else "info"}",'
                f'"@timestamp":"2025-01-02T03:04:05.{i:03d}+01:00","n":{i}}}')
        lines.append(f"2025-03-04T05:06:07.000000000Z stdout F {body}")
    lines.append("2025-03-04T05:06:07.000000000Z stderr F plain text")
    append_lines(s.logs / "app.log", lines)
    events = s.wait_events(41)
    plain = [e for e in events if e["stream"] == "stderr"]
    assert len(plain) == 1 and plain[0]["message"] == "plain text"
    assert plain[0]["error"]["type"] == "json"
    assert s.ship_metric("sluice_shipper_ndjson_errors_total") == 1
    assert s.ship_metric('sluice_shipper_lines_dropped_total{reason="processor"}') == 10
    for e in events:
        if e["stream"] == "stdout":
            i = e["n"]
            assert i % 5 != 0 and e["message"] == f"req {i}" and e["msg"] == f"req {i}"
            assert e["@timestamp"] == f"2025-01-02T02:04:05.{i:03d}Z"
            assert e["input"]["type"] == "container"
    s.stop_all()

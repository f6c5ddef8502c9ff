"""`sluice-aggregator --test-pipeline`: lines from stdin through the configured
filters, each event that comes out printed as indented JSON (the grok debugger of
the command line). Outputs are checked but never opened."""

import json
import os
import subprocess

from conftest import AGGREGATOR, write_config

CONFIG = """
pipeline:
  filters:
    - grok: {match: {message: '%{IP:client} %{WORD:verb} %{URIPATHPARAM:request} %{NUMBER:status:int}'}}
    - mutate: {add_tag: [parsed]}
    - drop: {when: {field: verb, equals: DELETE}}
outputs:
  - elasticsearch: {hosts: ["http://127.0.0.1:1"]}
"""


def run(tmp_path, stdin, *args, config=CONFIG):
    cfg = write_config(os.path.join(tmp_path, "agg.yml"), config)
    return subprocess.run([AGGREGATOR, "--test-pipeline", "-c", cfg, *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def events_of(text):
    """The JSON values printed one after another."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        v, i = dec.raw_decode(text, i)
        out.append(v)
    return out


def test_lines_become_events_and_come_out_filtered(tmp_path):
    r = run(tmp_path, "10.0.0.1 GET /index.html?x=1 200\nnot a match\r\n10.0.0.2 DELETE /a 404\n")
    assert r.returncode == 0, r.stderr
    first, second = events_of(r.stdout)
    ts = first.pop("@timestamp")
    assert ts.endswith("Z") and len(ts) == 24
    assert first == {"message": "10.0.0.1 GET /index.html?x=1 200", "client": "10.0.0.1",
                     "verb": "GET", "request": "/index.html?x=1", "status": 200,
                     "tags": ["parsed"]}
    assert second["message"] == "not a match"
    assert second["tags"] == ["_grokparsefailure", "parsed"]
    assert r.stdout.startswith('{\n  "@timestamp": "')  # indented for people
    assert r.stderr.strip().endswith("3 event(s) in, 2 out, 1 dropped")


def test_json_mode_takes_each_line_as_the_event(tmp_path):
    lines = (json.dumps({"message": "10.0.0.3 PUT /b 201", "fields": {"service": "web"}}) +
             "\n[1, 2]\n")
    r = run(tmp_path, lines, "--json")
    assert r.returncode == 1  # the array was reported and skipped; the rest ran
    (ev,) = events_of(r.stdout)
    assert ev == {"message": "10.0.0.3 PUT /b 201", "fields": {"service": "web"},
                  "client": "10.0.0.3", "verb": "PUT", "request": "/b", "status": 201,
                  "tags": ["parsed"]}
    assert "line 2: not a JSON object" in r.stderr


def test_configuration_errors_exit_2_and_say_where(tmp_path):
    r = run(tmp_path, "x\n", config="pipeline:\n  filters:\n    - grok: {patern: x}\n")
    assert r.returncode == 2
    assert "agg.yml:3:14: pipeline.filters[0] (grok): unknown option 'patern' " \
           "(did you mean 'patterns'?)" in r.stderr
    assert r.stdout == ""


def test_dissect_is_compiled_in(tmp_path):
    config = ("pipeline:\n  filters:\n"
              "    - dissect: {mapping: {message: '%{ts} %{+ts} %{level} [%{thread}] %{msg}'},"
              " convert_datatype: {}}\n"
              "outputs: [stdout: {}]\n")
    r = run(tmp_path, "2026-11-27 06:00:00,123 ERROR [main] request failed\n", config=config)
    assert r.returncode == 0, r.stderr
    (ev,) = events_of(r.stdout)
    assert (ev["ts"], ev["level"], ev["thread"], ev["msg"]) == \
        ("2026-11-27 06:00:00,123", "ERROR", "main", "request failed")

"""Routing in the core (docs/configuration.md, Outputs): `when` on an output sends it
only the events its condition accepts, an `else` output takes those that no `when`
output took, a plain output takes everything; a window is ACKed once every output
that took one of its events has it. Also: `-t` refuses what routing would ignore,
and `id:` keeps two instances of one plugin apart in the metrics."""

import os
import subprocess

from conftest import AGGREGATOR, wait_for, write_config
from ljclient import LJClient
from test_aggregator import TS, ack, base_config, start_agg  # noqa: F401 (fixture)

FILE_EVENTS = 'sluice_aggregator_output_events_total{output="%s",result="ok"}'
FILTER_EVENTS = 'sluice_aggregator_filter_events_total{filter="%s",result="%s"}'


def outputs(tmp_path):
    return (
        f'    - file: {{id: errors, path: "{tmp_path}/out/errors.ndjson",'
        " when: {field: level, equals: ERROR}}\n"
        f'    - file: {{id: warnings, path: "{tmp_path}/out/warnings.ndjson",'
        " when: {field: level, in: [WARN, WARNING]}}\n"
        f'    - file: {{id: rest, path: "{tmp_path}/out/rest.ndjson", else: true}}\n'
        f'    - file: {{path: "{tmp_path}/out/all.ndjson"}}\n'
    )


def test_when_else_and_plain_outputs_each_get_their_events(start_agg, tmp_path):
    a = start_agg(tmp_path, base_config(tmp_path, output=outputs(tmp_path)))
    levels = ["ERROR", "INFO", "WARN", "ERROR", "DEBUG", "WARNING", None, "error"]
    window = []
    for i, lvl in enumerate(levels):
        ev = {"@timestamp": TS, "message": f"m{i}"}
        if lvl is not None:
            ev["level"] = lvl
        window.append(ev)
    c = LJClient(a.port)
    c.send_window(window, compress="zlib")
    assert c.read_raw(6) == ack(len(window))
    # The ACK came after every output had its events: all files are complete now.
    assert [e["message"] for e in a.out("errors.ndjson")] == ["m0", "m3"]
    assert [e["message"] for e in a.out("warnings.ndjson")] == ["m2", "m5"]
    assert [e["message"] for e in a.out("rest.ndjson")] == ["m1", "m4", "m6", "m7"]
    assert a.out("all.ndjson") == window
    m = a.metrics()
    assert m[FILE_EVENTS % "errors"] == 2
    assert m[FILE_EVENTS % "warnings"] == 2
    assert m[FILE_EVENTS % "rest"] == 4
    assert m[FILE_EVENTS % "file"] == 8
    assert m["sluice_aggregator_events_acked_total"] == 8


def test_a_window_no_conditional_output_takes_is_still_acked(start_agg, tmp_path):
    out = (f'    - file: {{path: "{tmp_path}/out/errors.ndjson",'
           " when: {field: level, equals: ERROR}}\n")
    a = start_agg(tmp_path, base_config(tmp_path, output=out))
    c = LJClient(a.port)
    c.send_window([{"@timestamp": TS, "message": "quiet", "level": "INFO"}])
    assert c.read_raw(6) == ack(1)
    c.send_window([{"@timestamp": TS, "message": "loud", "level": "ERROR"}])
    assert c.read_raw(6) == ack(1)
    assert [e["message"] for e in a.out("errors.ndjson")] == ["loud"]


def test_two_instances_of_one_plugin_are_two_series(start_agg, tmp_path):
    filters = ("  filters:\n"
               "    - mutate: {add_fields: {a: '1'}}\n"
               "    - mutate: {id: second, add_fields: {b: '2'}, when: {field: x, exists: true}}\n"
               "    - mutate: {add_fields: {c: '3'}}\n")
    text = base_config(tmp_path, output=f'    - file: {{path: "{tmp_path}/out/all.ndjson"}}\n'
                       f'    - file: {{path: "{tmp_path}/out/copy.ndjson"}}\n')
    text = text.replace("  filters: []\n", filters)
    a = start_agg(tmp_path, text)
    c = LJClient(a.port)
    c.send_window([{"@timestamp": TS, "message": "m", "x": 1}, {"@timestamp": TS, "message": "n"}])
    assert c.read_raw(6) == ack(2)
    m = a.metrics()
    assert m[FILTER_EVENTS % ("mutate", "ok")] == 2
    assert m[FILTER_EVENTS % ("second", "ok")] == 1
    assert m[FILTER_EVENTS % ("mutate_2", "ok")] == 2
    assert m[FILE_EVENTS % "file"] == 2
    assert m[FILE_EVENTS % "file_2"] == 2
    assert [e.get("b") for e in a.out("copy.ndjson")] == ["2", None]


def check(tmp_path, outputs_text):
    cfg = write_config(os.path.join(tmp_path, "t.yml"),
                       base_config(tmp_path, output=outputs_text))
    return subprocess.run([AGGREGATOR, "-t", "-c", cfg], capture_output=True, text=True,
                          timeout=60)


def test_check_refuses_routing_it_cannot_honour(tmp_path):
    path = f"{tmp_path}/out/x.ndjson"
    for bad, why in [
        ("when: 42", "when: a condition must be a map"),
        ("when: {bogus: 1}", "when"),
        ("when: {field: a, equals: 1}, else: true", "either 'when' or 'else'"),
        ("els: true", "unknown option 'els' (did you mean 'else'?)"),
    ]:
        r = check(tmp_path, f'    - file: {{path: "{path}", {bad}}}\n')
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert why in r.stderr, (bad, r.stderr)
        assert "configuration OK" not in r.stdout + r.stderr
    r = check(tmp_path, f'    - file: {{path: "{path}", when: {{field: a, equals: 1}}}}\n'
                        f'    - file: {{path: "{path}", else: true}}\n')
    assert r.returncode == 0, r.stderr
    r = check(tmp_path, f'    - file: {{id: same, path: "{path}"}}\n'
                        f'    - stdout: {{id: same}}\n')
    assert r.returncode == 2 and "id 'same' is already the id of outputs[0] (file)" in r.stderr


def test_every_filter_counts_a_failure_as_error_and_tags_it_its_way(start_agg, tmp_path):
    """date used to count its failures result="ok"; tag_on_failure: null used to
    mean the default tag in json but none in date and grok."""
    filters = ("  filters:\n"
               "    - date: {match: [t, ISO8601], tag_on_failure: null}\n"
               "    - json: {source: j, tag_on_failure: ~}\n"
               "    - grok: {match: {message: '^%{INT:n}$'}, tag_on_failure: null}\n")
    out = f'    - file: {{path: "{tmp_path}/out/all.ndjson"}}\n'
    a = start_agg(tmp_path, base_config(tmp_path, output=out).replace("  filters: []\n", filters))
    c = LJClient(a.port)
    c.send_window([{"@timestamp": TS, "message": "nope", "t": "yesterday", "j": "{"},
                   {"@timestamp": TS, "message": "7", "t": "2026-01-02T03:04:05Z",
                    "j": '{"k": 1}'}])
    assert c.read_raw(6) == ack(2)
    bad, good = a.out("all.ndjson")
    assert bad["tags"] == ["_dateparsefailure", "_jsonparsefailure", "_grokparsefailure"]
    assert "tags" not in good and good["n"] == "7" and good["k"] == 1
    assert good["@timestamp"] == "2026-01-02T03:04:05.000Z"
    m = a.metrics()
    for f in ("date", "json", "grok"):
        assert m[FILTER_EVENTS % (f, "error")] == 1, f
        assert m[FILTER_EVENTS % (f, "ok")] == 1, f

"""Events no filter touches leave as the very bytes they came in (docs/architecture.md,
"Events on the workers"): the aggregator validates every event once, but copies the
text of an untouched event to the outputs instead of serialising its tree again, and
of an event a filter changed it copies every member no stage declared it touches. These tests use JSON spellings that a re-serialisation would change (escapes
that need none, numbers with trailing zeros or exponents, a key order the tree keeps
anyway), so a copied event and a rewritten one are told apart byte for byte."""

import json
import os

from ljclient import LJClient, compressed_frame, json_frame, window_frame
from test_aggregator import TS, ack, base_config, start_agg  # noqa: F401 (fixture)

# Valid, compact JSON that the writer would spell differently: "\/" and "\u00e9" need no
# escape, 1.50 is written 1.5 and -0 -0.0, "\u001F" stays escaped but lower case.
ODD = ('{"@timestamp":"%s","@metadata":{"beat":"filebeat","type":"_doc"},'
       '"message":"a\\/b \\u00e9 %s","n":1.50,"big":-0,"ctl":"\\u001F","touch":%s}')


def odd(i, touch):
    return (ODD % (TS, i, "true" if touch else "false")).encode()


def lines(path):
    with open(path, "rb") as f:
        return f.read().splitlines()


def send(port, texts, compress="zlib"):
    body = b"".join(json_frame(i + 1, t) for i, t in enumerate(texts))
    c = LJClient(port)
    c.send(window_frame(len(texts)) + (compressed_frame(body, compress) if compress else body))
    assert c.read_raw(6) == ack(len(texts))
    c.close()


def test_a_window_mixing_filtered_and_untouched_events(start_agg, tmp_path):
    """Only the events the filter's `when` picks are rewritten; the rest are the bytes
    sent, @metadata included (the file output keeps it by default)."""
    filters = ("  filters:\n"
               "    - mutate: {when: {field: touch, equals: true}, add_fields: {seen: yes}}\n")
    text = base_config(tmp_path).replace("  filters: []\n", filters)
    a = start_agg(tmp_path, text)
    sent = [odd(i, touch=i % 3 == 0) for i in range(12)]
    send(a.port, sent)
    got = lines(os.path.join(tmp_path, "out", f"events-{TS[:10].replace('-', '.')}.ndjson"))
    assert len(got) == len(sent)
    for i, (s, g) in enumerate(zip(sent, got)):
        if i % 3 == 0:
            # The filter declared what it touches (its `when` reads touch, it adds
            # seen): every other member is copied as sent, the new one follows.
            assert g == s[:-1] + b',"seen":"yes"}'
            want = json.loads(s)
            want["seen"] = "yes"
            assert json.loads(g) == want
        else:
            assert g == s, f"event {i} was rewritten"
    m = a.metrics()
    assert m['sluice_aggregator_filter_events_total{filter="mutate",result="ok"}'] == 4
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 12


def test_metadata_false_cuts_the_member_from_the_copied_text(start_agg, tmp_path):
    """@metadata first, in the middle, last and alone: each cut leaves valid JSON."""
    out = f'    - file: {{path: "{tmp_path}/out/x.ndjson", metadata: false}}\n'
    a = start_agg(tmp_path, base_config(tmp_path, output=out))
    sent = [
        b'{"@metadata":{"a":1},"message":"first","n":1.50}',
        b'{"message":"middle","@metadata":{"a":[1,2]},"n":1.50}',
        b'{"message":"last","n":1.50,"@metadata":{}}',
        b'{"@metadata":{"only":true}}',
        b'{"message":"none","n":1.50}',
    ]
    send(a.port, sent, compress=None)
    got = lines(os.path.join(tmp_path, "out", "x.ndjson"))
    assert got == [
        b'{"message":"first","n":1.50}',
        b'{"message":"middle","n":1.50}',
        b'{"message":"last","n":1.50}',
        b'{}',
        b'{"message":"none","n":1.50}',
    ]


def test_text_that_cannot_be_copied_is_written_from_the_tree(start_agg, tmp_path):
    """Whitespace (a newline would break a line-per-event file), a duplicate key, invalid
    UTF-8 and a number beyond a double: each event is rewritten, one line, valid JSON."""
    a = start_agg(tmp_path, base_config(tmp_path, output=(
        f'    - file: {{path: "{tmp_path}/out/x.ndjson"}}\n')))
    sent = [
        b'{"message":\n"spaced",  "n": 1}',
        b'{"message":"dup","message":"second"}',
        b'{"message":"bad \xff utf8"}',
        b'{"message":"huge","n":1e400}',
    ]
    send(a.port, sent, compress="zstd" if _has_zstd() else None)
    got = lines(os.path.join(tmp_path, "out", "x.ndjson"))
    assert got == [
        b'{"message":"spaced","n":1}',
        b'{"message":"second"}',
        b'{"message":"bad \xef\xbf\xbd utf8"}',
        b'{"message":"huge","n":null}',
    ]


def test_bad_json_in_a_window_fails_it_on_the_workers(start_agg, tmp_path):
    """Parsing moved to the workers; a bad event still closes the connection unACKed,
    counts reason="invalid_json", and nothing of its window reaches the output."""
    a = start_agg(tmp_path, base_config(tmp_path, output=(
        f'    - file: {{path: "{tmp_path}/out/x.ndjson"}}\n')))
    c = LJClient(a.port)
    c.send(window_frame(3) + json_frame(1, b'{"message":"ok"}') + json_frame(2, b'{"message":')
           + json_frame(3, b'{"message":"after"}'))
    assert c.wait_closed() == b""  # no ACK
    assert a.metric('sluice_aggregator_protocol_errors_total{reason="invalid_json"}') == 1
    assert "event seq 2:" in a.proc.logtext()
    assert not os.path.exists(os.path.join(tmp_path, "out", "x.ndjson"))
    assert a.metric("sluice_aggregator_events_acked_total") == 0


def _has_zstd():
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def test_members_a_filter_does_not_declare_are_copied_around_its_changes(start_agg, tmp_path):
    """mutate renames, converts and removes; date rewrites @timestamp. The members they
    declare are written from the tree in their places, the others copied as sent."""
    filters = ("  filters:\n"
               "    - mutate: {convert: {n: integer}, rename: {old: new}, remove_fields: [gone]}\n"
               "    - date: {match: [when, ISO8601]}\n")
    text = base_config(tmp_path).replace("  filters: []\n", filters)
    text = text.replace("events-%{+yyyy.MM.dd}.ndjson", "x.ndjson")
    a = start_agg(tmp_path, text)
    sent = [b'{"@timestamp":"2020-01-01T00:00:00.000Z","a":"\\/kept","n":"7","old":1.50,'
            b'"gone":{"x":1},"when":"2021-02-03T04:05:06Z","z":[1,"\\u00e9"]}']
    send(a.port, sent)
    got = lines(os.path.join(tmp_path, "out", "x.ndjson"))
    assert got == [b'{"@timestamp":"2021-02-03T04:05:06.000Z","a":"\\/kept","n":7,'
                   b'"when":"2021-02-03T04:05:06Z","z":[1,"\\u00e9"],"new":1.5}']


def test_a_text_the_scanner_does_not_vouch_for_is_parsed_whole(start_agg, tmp_path):
    """An exponent (it might overflow) sends the event through the full parser: a filter
    that changes it then writes it whole from its tree."""
    filters = "  filters:\n    - mutate: {add_fields: {seen: yes}}\n"
    text = base_config(tmp_path).replace("  filters: []\n", filters)
    text = text.replace("events-%{+yyyy.MM.dd}.ndjson", "x.ndjson")
    a = start_agg(tmp_path, text)
    send(a.port, [b'{"a":"\\/x","n":2E3}', b'{"a":"\\/x","n":2}'])
    assert lines(os.path.join(tmp_path, "out", "x.ndjson")) == [
        b'{"a":"/x","n":2000.0,"seen":"yes"}', b'{"a":"\\/x","n":2,"seen":"yes"}']


def test_a_member_grok_overwrites_is_replaced_in_place_without_being_parsed(start_agg, tmp_path):
    """grok's `overwrite` of a root capture replaces the member whole, so the core leaves
    the text's member unparsed: where the pattern matches, the capture takes the member's
    place; where it does not, the member is the bytes sent. The same with a later stage
    that reads the member (then it is parsed, and the result is the same)."""
    sent = [b'{"message":"x Mozilla/5","agent":{"v":"\\/1","n":1.50},"z":1}',
            b'{"message":"no match","agent":{"v":"\\/1","n":1.50},"z":2}']
    want = [b'{"message":"x Mozilla/5","agent":"Mozilla/5","z":1}',
            b'{"message":"no match","agent":{"v":"\\/1","n":1.50},"z":2,'
            b'"tags":["_grokparsefailure"]}']
    for later in ("", "    - mutate: {when: {field: agent, equals: nope}, add_fields: {k: v}}\n"):
        filters = ("  filters:\n"
                   "    - grok: {patterns: ['x %{NOTSPACE:agent}'], overwrite: [agent]}\n" + later)
        d = tmp_path / ("later" if later else "alone")
        d.mkdir()
        text = base_config(d).replace("  filters: []\n", filters)
        text = text.replace("events-%{+yyyy.MM.dd}.ndjson", "x.ndjson")
        a = start_agg(d, text)
        send(a.port, sent)
        got = lines(os.path.join(d, "out", "x.ndjson"))
        if later:
            # Parsed for the condition: the unmatched event's agent is written from
            # its tree, still equal as JSON.
            assert got[0] == want[0]
            assert json.loads(got[1]) == json.loads(want[1])
        else:
            assert got == want

"""The shipper's event where Filebeat's has a field: log.file.inode and
log.file.device_id (as os.stat() gives them), agent.id (kept in
<registry.path>/meta.json across restarts) and agent.ephemeral_id (new per
start); and no event for an empty line, as Filebeat, with the registry moving
past it all the same. Real shipper -> real aggregator (file output)."""

import json
import os
import re
import signal

from conftest import metrics_of, wait_for
from stack import Stack, append_lines, by_origin

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def registry_offset(tmp_path, path):
    """The offset registry.json holds for path (None while it has no entry)."""
    try:
        with open(tmp_path / "registry" / "registry.json") as f:
            reg = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    for e in reg["entries"]:
        if e["path"] == str(path):
            return e["offset"]
    return None


def test_events_carry_the_files_identity_and_the_agents(tmp_path, procs):
    s = Stack(tmp_path, procs)
    a, b = s.logs / "a.log", s.logs / "b.log"
    want = {}
    for path, n in ((a, 3), (b, 2)):
        want.update(((str(path), o), t) for o, t in append_lines(path, [f"{path.name}-{i}"
                                                                         for i in range(n)]))
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(5)
    assert by_origin(events) == want

    meta = json.loads((tmp_path / "registry" / "meta.json").read_text())
    agent_id = meta["uuid"]
    assert UUID.match(agent_id)
    first_ephemeral = events[0]["agent"]["ephemeral_id"]
    assert UUID.match(first_ephemeral) and first_ephemeral != agent_id
    for e in events:
        st = os.stat(e["log"]["file"]["path"])
        # Filebeat's strings: decimal st_ino and st_dev.
        assert e["log"]["file"] == {"path": e["log"]["file"]["path"],
                                    "inode": str(st.st_ino), "device_id": str(st.st_dev)}
        assert e["agent"] == {"type": "sluice-shipper", "version": "0.1.0",
                              "name": e["host"]["name"], "id": agent_id,
                              "ephemeral_id": first_ephemeral}
        assert e["@metadata"] == {"beat": "sluice", "type": "_doc", "version": "0.1.0"}

    # A reload (SIGHUP) is the same process: both ids stay.
    s.shipper.send(signal.SIGHUP)
    wait_for(lambda: "reload: configuration" in s.shipper.logtext(), what="reload")
    want.update(((str(b), o), t) for o, t in append_lines(b, ["after-reload"]))
    events = s.wait_events(6)
    assert by_origin(events) == want
    reloaded = [e for e in events if e["message"] == "after-reload"][0]
    assert reloaded["agent"]["id"] == agent_id
    assert reloaded["agent"]["ephemeral_id"] == first_ephemeral
    assert s.shipper.stop() == 0

    # A restart: the same agent.id (the file's), a new ephemeral_id.
    want.update(((str(a), o), t) for o, t in append_lines(a, ["after-restart"]))
    s.start_shipper()
    events = s.wait_events(7)
    assert by_origin(events) == want
    last = [e for e in events if e["message"] == "after-restart"][0]
    assert last["agent"]["id"] == agent_id
    assert UUID.match(last["agent"]["ephemeral_id"])
    assert last["agent"]["ephemeral_id"] != first_ephemeral
    assert json.loads((tmp_path / "registry" / "meta.json").read_text()) == meta
    s.stop_all()


def test_a_removed_or_corrupt_meta_json_gives_a_new_agent_id(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, ["one"])
    s.start_aggregator()
    s.start_shipper()
    first = s.wait_events(1)[0]["agent"]["id"]
    assert s.shipper.stop() == 0
    meta = tmp_path / "registry" / "meta.json"
    meta.write_text("{not json")
    append_lines(log, ["two"])
    s.start_shipper()
    second = [e for e in s.wait_events(2) if e["message"] == "two"][0]["agent"]["id"]
    assert UUID.match(second) and second != first
    assert json.loads(meta.read_text())["uuid"] == second
    assert "replacing it with a new agent.id" in s.shipper.logtext()
    s.stop_all()


def test_empty_lines_make_no_event_and_the_registry_passes_them(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    # (bytes, message or None for an empty line): LF and CRLF empty lines
    # between, before and after the text; a lone CR is text.
    pieces = [(b"\n", None), (b"first\n", "first"), (b"\n", None), (b"\r\n", None),
              (b"second\r\n", "second"), (b"\r\n", None), (b"\r\n", None), (b"\n", None),
              (b" \n", " "), (b"\r\r\n", "\r"), (b"third\n", "third"), (b"\n", None),
              (b"\r\n", None)]
    want, off, empty = {}, 0, 0
    with open(log, "wb") as f:
        for data, msg in pieces:
            f.write(data)
            if msg is None:
                empty += 1
            else:
                want[(str(log), off)] = msg
            off += len(data)
    size = os.path.getsize(log)
    assert off == size
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(len(want))
    assert by_origin(events) == want
    m = wait_for(lambda: (x := metrics_of(s.ship_metrics))
                 ["sluice_shipper_events_acked_total"] == len(want) and x, what="acked")
    assert m['sluice_shipper_lines_dropped_total{reason="empty"}'] == empty
    assert m["sluice_shipper_lines_read_total"] == len(pieces)
    # The ACK of "third" carries the registry past the two empty lines after it.
    wait_for(lambda: registry_offset(tmp_path, log) == size, what=f"registry offset {size}")
    assert s.shipper.stop() == 0
    assert registry_offset(tmp_path, log) == size

    # A restart resumes at the end: nothing is sent again. Then more empty
    # lines only, which move the registry with no event at all.
    s.start_shipper()
    wait_for(lambda: f"harvesting {log} from offset {size}" in s.shipper.logtext(),
             what="resume at the end of the file")
    with open(log, "ab") as f:
        f.write(b"\n\r\n\n")
    wait_for(lambda: registry_offset(tmp_path, log) == size + 4, what="registry past empty lines")
    want.update(((str(log), o), t) for o, t in append_lines(log, ["fourth"]))
    events = s.wait_events(len(want))
    assert by_origin(events) == want
    m = wait_for(lambda: (x := metrics_of(s.ship_metrics))
                 ["sluice_shipper_events_acked_total"] == 1 and x, what="1 acked")
    assert m['sluice_shipper_lines_dropped_total{reason="empty"}'] == 3
    wait_for(lambda: registry_offset(tmp_path, log) == os.path.getsize(log), what="registry at end")
    s.stop_all()


def test_empty_lines_inside_a_multiline_group_stay(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="""    multiline:
      pattern: '^[[:space:]]|^$'
      match: after""")
    log = s.logs / "app.log"
    with open(log, "wb") as f:
        f.write(b"\nException in main\n  at a()\n\r\n  at b()\n\n"
                b"next event\n\nlast\n")
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(2)  # "last" waits for the next line or the timeout (5 s)
    assert by_origin(events) == {
        (str(log), 1): "Exception in main\n  at a()\n\n  at b()\n",
        (str(log), 40): "next event\n",
    }
    assert [e["log"]["flags"] for e in events] == [["multiline"], ["multiline"]]
    events = s.wait_events(3)
    assert by_origin(events)[(str(log), 52)] == "last"
    s.stop_all()

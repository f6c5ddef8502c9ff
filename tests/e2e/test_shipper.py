"""The skeleton path end to end: sluice-shipper tails real files and ships them
over Lumberjack to a real sluice-aggregator whose file output we read back.
Every assertion is exact: event count, message, path and byte offset."""

import os
import shutil
import signal
import subprocess

import pytest

from conftest import SHIPPER, free_port, metrics_of, wait_for, write_config
from stack import Stack, append_lines, by_origin


@pytest.mark.parametrize("compression", ["zstd", "zlib", "none"])
def test_lines_before_and_after_start_arrive_exactly_once(tmp_path, procs, compression):
    s = Stack(tmp_path, procs, compression=compression)
    a, b = s.logs / "a.log", s.logs / "b.log"
    expected = {}
    for off, text in append_lines(a, [f"a-before-{i} GET /index.html 200" for i in range(300)]):
        expected[(str(a), off)] = text
    for off, text in append_lines(b, [f"b-before-{i} \u00e9t\u00e9 \"quoted\" \\ tab\t"
                                      for i in range(120)]):
        expected[(str(b), off)] = text
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(420)
    for off, text in append_lines(a, [f"a-after-{i}" for i in range(200)]):
        expected[(str(a), off)] = text
    for off, text in append_lines(b, [f"b-after-{i}" for i in range(80)], newline="\r\n"):
        expected[(str(b), off)] = text
    events = s.wait_events(700)
    assert by_origin(events) == expected

    e = events[0]
    assert e["input"] == {"type": "filestream"}
    assert e["agent"]["type"] == "sluice-shipper"
    assert e["@metadata"]["beat"] == "sluice"
    assert e["ecs"] == {"version": "8.0.0"}
    assert len(e["@timestamp"]) == 24 and e["@timestamp"].endswith("Z")

    ship = wait_for(lambda: (m := metrics_of(s.ship_metrics))
                    ["sluice_shipper_events_acked_total"] == 700 and m,
                    what="shipper acked metric")
    assert ship["sluice_shipper_lines_read_total"] == 700
    assert ship["sluice_shipper_events_sent_total"] == 700
    assert ship["sluice_shipper_wire_bytes_total"] > 0
    assert ship["sluice_shipper_files_open"] == 2
    assert ship['sluice_shipper_input_files_open{input="app"}'] == 2
    agg = metrics_of(s.agg_metrics)
    assert agg["sluice_aggregator_events_received_total"] == 700
    assert agg["sluice_aggregator_events_acked_total"] == 700
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_restart_resumes_and_sends_nothing_twice(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    expected = dict(((str(log), o), t) for o, t in append_lines(log, [f"first-{i}" for i in range(250)]))
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(250)
    assert s.shipper.stop() == 0
    registry = (tmp_path / "registry" / "registry.json").read_text()
    assert f'"offset":{os.path.getsize(log)}' in registry

    expected.update(((str(log), o), t) for o, t in append_lines(log, [f"second-{i}" for i in range(40)]))
    s.start_shipper()
    events = s.wait_events(290)
    assert by_origin(events) == expected
    m = wait_for(lambda: (x := metrics_of(s.ship_metrics))
                 ["sluice_shipper_events_acked_total"] == 40 and x, what="40 acked")
    assert m["sluice_shipper_lines_read_total"] == 40
    assert s.shipper.stop() == 0


def test_start_position_end_skips_existing_lines(tmp_path, procs):
    s = Stack(tmp_path, procs, start_position="end")
    log = s.logs / "app.log"
    append_lines(log, [f"old-{i}" for i in range(10)])
    s.start_aggregator()
    s.start_shipper()
    wait_for(lambda: "harvesting" in s.shipper.logtext(), what="harvester start")
    new = append_lines(log, ["new-1", "new-2"])
    events = s.wait_events(2)
    assert by_origin(events) == {(str(log), o): t for o, t in new}


def test_file_created_after_start_is_read_from_its_first_byte(tmp_path, procs):
    s = Stack(tmp_path, procs, start_position="end")
    s.start_aggregator()
    s.start_shipper()
    late = s.logs / "late.log"
    lines = append_lines(late, [f"late-{i}" for i in range(5)])
    events = s.wait_events(5)
    assert by_origin(events) == {(str(late), o): t for o, t in lines}


def test_aggregator_down_at_start_then_up_loses_nothing(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    lines = append_lines(log, [f"waiting-{i}" for i in range(100)])
    s.start_shipper()
    wait_for(lambda: metrics_of(s.ship_metrics).get(
        f'sluice_shipper_connection_errors_total{{host="127.0.0.1:{s.agg_port}"}}', 0) >= 1,
        what="a connection error to be counted")
    s.start_aggregator()
    events = s.wait_events(100)
    assert by_origin(events) == {(str(log), o): t for o, t in lines}


def test_invalid_utf8_is_replaced_and_long_lines_truncated(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="    max_line_bytes: 64")
    log = s.logs / "app.log"
    with open(log, "wb") as f:
        f.write(b"ok line\n")                      # offset 0
        f.write(b"bad \xff\xfe bytes \xc3\n")      # offset 8
        f.write(b"x" * 100 + b"\n")                # offset 23, cut at 64
        f.write(b"after\n")                        # offset 124
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(4)
    got = {e["log"]["offset"]: e for e in events}
    assert got[0]["message"] == "ok line"
    assert got[8]["message"] == "bad \ufffd\ufffd bytes \ufffd"
    assert got[23]["message"] == "x" * 64
    assert got[23]["log"]["flags"] == ["truncated"]
    assert "flags" not in got[0]["log"]
    assert got[124]["message"] == "after"


def test_fields_tags_and_exclude_lines(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="""    fields: {service: web, tier: 2}
    tags: [web, edge]
    exclude_lines: ['^DEBUG']""")
    log = s.logs / "app.log"
    append_lines(log, ["INFO one", "DEBUG two", "WARN three"])
    events = s.wait_events(2) if s.start_aggregator() and s.start_shipper() else None
    assert sorted(e["message"] for e in events) == ["INFO one", "WARN three"]
    assert events[0]["fields"] == {"service": "web", "tier": 2}
    assert events[0]["tags"] == ["web", "edge"]
    m = wait_for(lambda: (x := metrics_of(s.ship_metrics))
                 ['sluice_shipper_lines_dropped_total{reason="exclude_lines"}'] == 1 and x,
                 what="dropped metric")
    assert m["sluice_shipper_lines_read_total"] == 3


def test_cli_version_and_config_errors(tmp_path):
    r = subprocess.run([SHIPPER, "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "sluice-shipper 0.1.0\n"
    bad = write_config(tmp_path / "bad.yml",
                       "inputs:\n  - paths: [/x/*.log]\n    bogus: 1\n    exclude_line: [x]\n"
                       "output:\n  timeout: abc\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert f"{bad}:3:5: inputs[0]: unknown option 'bogus'" in lines
    assert f"{bad}:4:5: inputs[0]: unknown option 'exclude_line' " \
           "(did you mean 'exclude_lines'?)" in lines
    assert f"{bad}:6:12: output: option 'timeout'" in r.stderr
    # -t creates and probes registry.path: keep it in tmp_path, not the default
    # /var/lib/sluice/shipper of the machine running the tests.
    good = write_config(tmp_path / "good.yml", "inputs:\n  - paths: [/x/*.log]\n"
                                               f"registry: {{path: \"{tmp_path}/registry\"}}\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "configuration OK\n"
    r = subprocess.run([SHIPPER, "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([SHIPPER, "-c", str(tmp_path / "missing.yml")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "missing.yml:1:1:" in r.stderr


def test_sigterm_exits_zero_and_writes_registry(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, ["one", "two"])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(2)
    s.shipper.send(signal.SIGTERM)
    assert s.shipper.stop() == 0
    assert f'"offset":{os.path.getsize(log)}' in (tmp_path / "registry" / "registry.json").read_text()


def test_output_hosts_with_a_bad_port_fail_test_config(tmp_path):
    bad = write_config(tmp_path / "bad.yml", """inputs:
  - paths: [/x/*.log]
output:
  hosts:
    - "127.0.0.1:99999"
    - "host:"
    - host:abc
    - "[::1]:0"
    - {host: "agg.example:-1", weight: 2}
    - "fe80::1:5044"
    - "[::1"
    - "[::1]:5044"
    - agg.example
""")
    r = subprocess.run([SHIPPER, "-t", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{bad}:5:7: output.hosts[0]: port must be 1..65535, got '99999' in '127.0.0.1:99999'",
        f"{bad}:6:7: output.hosts[1]: port must be 1..65535, got '' in 'host:'",
        f"{bad}:7:7: output.hosts[2]: port must be 1..65535, got 'abc' in 'host:abc'",
        f"{bad}:8:7: output.hosts[3]: port must be 1..65535, got '0' in '[::1]:0'",
        f"{bad}:9:14: output.hosts[4]: option 'host': port must be 1..65535, "
        "got '-1' in 'agg.example:-1'",
        f"{bad}:10:7: output.hosts[5]: an IPv6 address needs brackets (\"[::1]:5044\"), "
        "got 'fe80::1:5044'",
        f"{bad}:11:7: output.hosts[6]: must be \"host:port\" or \"[IPv6]:port\", got '[::1'",
    ]
    # The same as a single scalar, and the forms that are fine (port 5044 when omitted).
    one = write_config(tmp_path / "one.yml", "inputs:\n  - paths: [/x/*.log]\n"
                                             "output:\n  hosts: agg.example:65536\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(one)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == (
        f"{one}:4:10: output.hosts[0]: port must be 1..65535, got '65536' in 'agg.example:65536'\n")
    good = write_config(tmp_path / "good.yml", f"""inputs:
  - paths: [/x/*.log]
output:
  hosts: ["agg.example", "[::1]", "[::1]:1", {{host: "10.0.0.1:65535", backup: true}}]
registry: {{path: "{tmp_path}/registry"}}
""")
    r = subprocess.run([SHIPPER, "-t", "-c", str(good)], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")


@pytest.mark.parametrize("under_a_file", [True, False], ids=["path-under-a-file", "path-is-a-file"])
def test_registry_path_that_cannot_be_written_fails_test_config_and_start(tmp_path, procs,
                                                                          under_a_file):
    # A regular file in the way: unlike permission bits, root cannot get past it.
    (tmp_path / "file").write_text("not a directory\n")
    reg = tmp_path / "file" / "reg" if under_a_file else tmp_path / "file"
    why = (f"cannot create directory '{reg}': Not a directory" if under_a_file
           else f"'{reg}' is not a directory")
    mport = free_port()
    cfg = write_config(tmp_path / "shipper.yml", f"""inputs:
  - paths: ["{tmp_path}/logs/*.log"]
registry:
  flush: 1s
  path: "{reg}"
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    want = f"{cfg}:5:9: registry: option 'path': {why}\n"
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", want)

    p = procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_for(lambda: not p.alive(), what="the shipper to refuse to start")
    assert p.stop() == 2
    assert p.logtext() == want


def test_missing_registry_directory_is_checked_by_test_config_without_creating_it(tmp_path):
    reg = tmp_path / "state" / "sluice" / "registry"
    cfg = write_config(tmp_path / "shipper.yml", "inputs:\n  - paths: [/x/*.log]\n"
                                                 f"registry: {{path: \"{reg}\"}}\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")
    # -t changes nothing on disk: it only checked that the directory can be made.
    assert not (tmp_path / "state").exists()
    assert os.listdir(tmp_path) == ["shipper.yml"]


def test_a_pasted_filebeat_yml_says_where_each_section_goes(tmp_path):
    cfg = write_config(tmp_path / "filebeat.yml", """
filebeat.inputs:
  - type: filestream
    paths: ["/var/log/*.log"]
output.logstash:
  hosts: ["localhost:5044"]
processors:
  - add_host_metadata: ~
logging.level: debug
""")
    # processors: is the shipper's own (Filebeat's names): no hint for it.
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"{cfg}:2:1: 'filebeat.inputs' looks like filebeat.yml: Filebeat's inputs: sluice's "
        "are 'inputs:', a list of {paths: [...], start_position, ...} (see "
        "docs/configuration.md)",
        f"{cfg}:5:1: 'output.logstash' looks like filebeat.yml: Filebeat's output: sluice's is "
        "'output: {hosts: [...]}' (compression: zlib to send to Logstash itself) (see "
        "docs/configuration.md)",
        f"{cfg}:9:1: 'logging.level' looks like filebeat.yml: logging is set on the command "
        "line: --log-level, --log-format (see docs/configuration.md)",
    ], r.stderr


def test_per_file_lag_metrics(tmp_path, procs):
    """sluice_shipper_file_lag_bytes{input,path} is the file's size minus its ACKed
    offset, file_lag_seconds how long it has been behind; lag_bytes sums the files.
    With the aggregator down both files lag by their whole size; once it is up, by 0."""
    s = Stack(tmp_path, procs, ship_timeout="1s")
    a, b = s.logs / "a.log", s.logs / "b.log"
    append_lines(a, [f"a{i}" for i in range(100)])
    append_lines(b, [f"b{i}" for i in range(7)])
    s.start_shipper()

    def series(m, name, path):
        return m.get(f'{name}{{input="app",path="{path}"}}')

    size_a, size_b = a.stat().st_size, b.stat().st_size
    wait_for(lambda: series(metrics_of(s.ship_metrics), "sluice_shipper_file_lag_bytes",
                            a) == size_a and
             metrics_of(s.ship_metrics)["sluice_shipper_lag_bytes"] == size_a + size_b,
             what="both files lagging by their size")
    wait_for(lambda: series(metrics_of(s.ship_metrics), "sluice_shipper_file_lag_seconds",
                            b) >= 1, what="b behind for a second")
    s.start_aggregator()
    s.wait_events(107)
    wait_for(lambda: metrics_of(s.ship_metrics)["sluice_shipper_lag_bytes"] == 0,
             what="no lag once ACKed")
    m = metrics_of(s.ship_metrics)
    assert series(m, "sluice_shipper_file_lag_bytes", b) == 0
    assert series(m, "sluice_shipper_file_lag_seconds", a) == 0
    # An idle file (read to its end) that grows while nothing can be ACKed:
    # its lag is the bytes appended (the size is learnt again once woken).
    s.aggregator.stop()
    before = a.stat().st_size
    append_lines(a, [f"late{i}" for i in range(5)])
    grown = a.stat().st_size - before
    wait_for(lambda: series(metrics_of(s.ship_metrics), "sluice_shipper_file_lag_bytes",
                            a) == grown and
             metrics_of(s.ship_metrics)["sluice_shipper_lag_bytes"] == grown,
             what=f"a lagging by the {grown} bytes appended")
    s.aggregator = None
    s.stop_all()


def _stat_calls(pid, seconds):
    """fstat-family system calls of pid (all threads) during `seconds`, by strace -c."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (make deps installs it)")
    p = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fstat,newfstatat,statx",
                          "-p", str(pid)], stderr=subprocess.PIPE, text=True)
    try:
        p.wait(seconds)
    except subprocess.TimeoutExpired:
        p.send_signal(2)  # SIGINT: strace detaches and prints its table
    _, err = p.communicate(timeout=30)
    total = 0
    for line in err.splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] in ("fstat", "newfstatat", "statx") and f[3].isdigit():
            total += int(f[3])
    return total, err


def test_idle_files_are_not_stat_every_second(tmp_path, procs):
    """The lag metrics need each open file's size every second; a file read to its
    end that nothing has woken since has the size that was read. Before, 200 idle
    open files cost 200 fstat calls a second."""
    nfiles = 200
    s = Stack(tmp_path, procs, extra_input="    scan_frequency: 1h\n    close_inactive: 1h")
    for i in range(nfiles):
        append_lines(s.logs / f"f{i:03}.log", [f"line {i}"])
    s.start_aggregator()
    shipper = s.start_shipper()
    s.wait_events(nfiles)
    wait_for(lambda: metrics_of(s.ship_metrics)["sluice_shipper_lag_bytes"] == 0,
             what="every file ACKed")
    calls, table = _stat_calls(shipper.pid, 3.5)
    # Three or four lag ticks happen in the window: the old code made >= 600 calls.
    assert calls < nfiles // 2, table
    s.stop_all()

"""The shipper against the ways files really change: rotation by rename and by
copytruncate, deletion, inode reuse, many files, new subdirectories, multiline
stack traces, partial lines, kill -9, an aggregator outage. Every test checks
the exact set of lines that arrived: nothing lost, and nothing twice unless a
crash makes duplicates legitimate (then they are bounded)."""

import os
import signal
import threading
import time

import pytest

from conftest import wait_for
from stack import Stack, append_lines, by_origin


def messages(events):
    return [e["message"] for e in events]


class Writer(threading.Thread):
    """Writes numbered lines to a log, rotating it every `rotate_every` lines."""

    def __init__(self, path, total, rotate_every=0, mode="rename", batch=50, before_rotate=None):
        super().__init__(daemon=True)
        self.path, self.total, self.rotate_every = path, total, rotate_every
        self.mode, self.batch = mode, batch
        self.before_rotate = before_rotate  # called with the lines written so far
        self.rotations = 0
        self.error = None

    def rotate(self):
        self.rotations += 1
        if self.mode == "rename":
            os.rename(self.path, f"{self.path}.{self.rotations}")
        else:  # copytruncate, as logrotate does it
            with open(self.path, "rb") as src, open(f"{self.path}.{self.rotations}", "wb") as dst:
                dst.write(src.read())
            os.truncate(self.path, 0)

    def run(self):
        try:
            f = open(self.path, "a")
            for i in range(self.total):
                f.write(f"line {i:07d} some payload to make it longer\n")
                if i % self.batch == self.batch - 1:
                    f.flush()
                    time.sleep(0.002)
                if self.rotate_every and i % self.rotate_every == self.rotate_every - 1 \
                        and i != self.total - 1:
                    f.close()
                    if self.before_rotate:
                        self.before_rotate(i + 1)
                    self.rotate()
                    f = open(self.path, "a")
            f.close()
        except Exception as e:  # surfaced by the test
            self.error = e


def expected_lines(n):
    return {f"line {i:07d} some payload to make it longer" for i in range(n)}


@pytest.mark.parametrize("pattern", ["*.log", "*.log*"])
def test_rename_rotation_under_continuous_writes(tmp_path, procs, pattern):
    s = Stack(tmp_path, procs, paths=[f"{tmp_path}/logs/{pattern}"])
    s.start_aggregator()
    s.start_shipper()

    def opened(written):
        # With "*.log" a file renamed to app.log.N before the shipper ever saw it is out
        # of the glob: lost, as in Filebeat (docs/operations.md, rotation). Under load its whole
        # life can be shorter than the shipper's reaction, so rotate only once the shipper
        # reads the current file; from then on it must follow it through the rename.
        wait_for(lambda: s.ship_metric("sluice_shipper_lines_read_total") > written - 1000,
                 what=f"the shipper reading app.log before rotation at line {written}")

    w = Writer(str(s.logs / "app.log"), 6000, rotate_every=1000,
               before_rotate=opened if pattern == "*.log" else None)
    w.start()
    w.join(120)
    assert w.error is None and w.rotations == 5
    events = s.wait_events(6000)
    got = messages(events)
    assert len(got) == len(set(got)) == 6000
    assert set(got) == expected_lines(6000)


def test_copytruncate_same_inode_restarts_at_zero(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, [f"old-{i:04d} xxxxxxxxxxxxxxxxxxxxxxxx" for i in range(300)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(300)
    ino = os.stat(log).st_ino
    with open(log, "rb") as src, open(str(log) + ".1", "wb") as dst:
        dst.write(src.read())
    os.truncate(log, 0)
    new = append_lines(log, [f"new-{i}" for i in range(40)])
    assert os.stat(log).st_ino == ino
    events = s.wait_events(340)
    got = by_origin([e for e in events if e["message"].startswith("new-")])
    assert got == {(str(log), o): t for o, t in new}
    assert len(set(messages(events))) == 340


def copytruncate(log, suffix=".1"):
    """What logrotate's copytruncate does: copy the content aside, truncate in place."""
    with open(log, "rb") as src, open(str(log) + suffix, "wb") as dst:
        dst.write(src.read())
    os.truncate(log, 0)


def test_copytruncate_regrown_past_offset_between_reads(tmp_path, procs):
    """The file is truncated and written past the old offset before the shipper
    looks again (here: the shipper is SIGSTOPped meanwhile). The first bytes no
    longer match: the new content is read from 0, none of it lost."""
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    old = [f"old-{i:04d} " + "o" * 40 for i in range(300)]
    append_lines(log, old)
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(300)
    old_size = os.path.getsize(log)
    ino = os.stat(log).st_ino
    new = [f"new-{i:04d} " + "n" * 30 for i in range(600)]
    os.kill(s.shipper.pid, signal.SIGSTOP)
    try:
        copytruncate(log)
        append_lines(log, new)
    finally:
        os.kill(s.shipper.pid, signal.SIGCONT)
    assert os.stat(log).st_ino == ino and os.path.getsize(log) > old_size
    # Lines arrive in file order: once the last new line is in, all before it are.
    wait_for(lambda: new[-1] in messages(s.events()), what="the last new line")
    wait_for(lambda: s.ship_metric("sluice_shipper_queue_events") == 0, what="queue drained")
    got = messages(s.events())
    missing = set(new) - set(got)
    assert not missing, f"{len(missing)} of {len(new)} new lines lost"
    assert set(got) == set(old) | set(new)
    assert len(got) == len(old) + len(new)
    assert "was truncated" in s.shipper.logtext()


def test_copytruncate_while_reading_is_paused_by_an_outage(tmp_path, procs):
    """The aggregator is down, the queue is full and reading has paused mid-file;
    logrotate copytruncates and the application writes more than the old size
    before the aggregator is back. Every line of both generations arrives: the
    old ones from app.log and its copy app.log.1, the new ones exactly once."""
    s = Stack(tmp_path, procs, paths=[f"{tmp_path}/logs/app.log*"],
              extra_top="queue: {max_events: 1000}")
    log = s.logs / "app.log"
    old = [f"old-{i:05d} " + "o" * 40 for i in range(200)]
    append_lines(log, old)
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(200)
    assert s.aggregator.stop() == 0
    more = [f"old-{i:05d} " + "o" * 40 for i in range(200, 5000)]
    append_lines(log, more)
    old += more
    wait_for(lambda: s.ship_metric("sluice_shipper_queue_events") == 1000, what="queue full")
    assert s.ship_metric("sluice_shipper_lines_read_total") < len(old), "reading did not pause"
    old_size = os.path.getsize(log)
    copytruncate(log)
    new = [f"new-{i:05d} " + "n" * 40 for i in range(6000)]
    append_lines(log, new)
    assert os.path.getsize(log) > old_size
    s.start_aggregator()
    wait_for(lambda: new[-1] in messages(s.events()), what="the last new line")
    wait_for(lambda: set(old) <= set(messages(s.events())), what="every old line")
    wait_for(lambda: s.ship_metric("sluice_shipper_queue_events") == 0, what="queue drained")
    got = messages(s.events())
    missing = set(new) - set(got)
    assert not missing, f"{len(missing)} of {len(new)} new lines lost"
    assert set(got) == set(old) | set(new)
    counts = {}
    for m in got:
        counts[m] = counts.get(m, 0) + 1
    assert all(counts[m] == 1 for m in new)
    # Old lines read before the rotation come again from the copy: at most twice,
    # plus windows re-sent after the outage.
    assert len(got) - len(set(got)) <= 5000 + 1000
    assert "was truncated" in s.shipper.logtext()


def test_symlink_to_proc_file_is_skipped(tmp_path, procs):
    """A matching symlink to /proc/self/status (size 0, yet reads return data)
    is not harvested: no events from it, logged once, counted; the regular file
    next to it is shipped."""
    s = Stack(tmp_path, procs, extra_input="    scan_frequency: 200ms")
    proc = s.logs / "proc.log"
    os.symlink("/proc/self/status", proc)
    log = s.logs / "app.log"
    append_lines(log, [f"app-{i}" for i in range(5)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(5)
    skipped = 'sluice_shipper_files_skipped_total{reason="pseudo_fs"}'
    wait_for(lambda: s.ship_metric(skipped) == 1, what="the proc file counted as skipped")
    # Several scans (every 200 ms) pass: nothing from the proc file, ever.
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert len(s.events()) == 5
        assert s.ship_metric("sluice_shipper_lines_read_total") == 5
        time.sleep(0.1)
    assert {e["log"]["file"]["path"] for e in s.events()} == {str(log)}
    assert s.ship_metric(skipped) == 1
    assert s.ship_metric("sluice_shipper_files_open") == 1
    text = s.shipper.logtext()
    assert text.count(f"skipping {proc}") == 1, text[-2000:]
    # A FIFO created later (seen through inotify) is skipped too, never opened.
    fifo = s.logs / "pipe.log"
    os.mkfifo(fifo)
    wait_for(lambda: s.ship_metric('sluice_shipper_files_skipped_total{reason="not_regular"}') == 1,
             what="the FIFO counted as skipped")
    append_lines(log, ["app-after"])
    events = s.wait_events(6)
    assert {e["log"]["file"]["path"] for e in events} == {str(log)}
    s.stop_all()


def test_delete_and_recreate(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, [f"first-{i}" for i in range(100)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(100)
    os.unlink(log)
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 0, what="deleted file closed")
    second = append_lines(log, [f"second-{i}" for i in range(30)])
    events = s.wait_events(130)
    assert by_origin([e for e in events if e["message"].startswith("second-")]) == \
        {(str(log), o): t for o, t in second}


def test_deleted_file_last_line_without_newline_is_shipped(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    with open(log, "wb") as f:
        f.write(b"complete\npartial-tail")
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(1)
    os.unlink(log)
    events = s.wait_events(2)
    assert sorted(messages(events)) == ["complete", "partial-tail"]


def test_partial_line_waits_for_its_newline(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    with open(log, "wb") as f:
        f.write(b"one\ntw")
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(1)
    wait_for(lambda: s.ship_metric("sluice_shipper_bytes_read_total") == 6, what="bytes read")
    assert len(s.events()) == 1
    with open(log, "ab") as f:
        f.write(b"o\r\nthree\n")
    events = s.wait_events(3)
    assert {e["log"]["offset"]: e["message"] for e in events} == {0: "one", 4: "two", 9: "three"}


def test_inode_reuse_is_not_resumed(tmp_path, procs):
    """A new file on the old file's inode starts at 0, not at the old offset."""
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, [f"old-{i:03d}-" + "o" * 40 for i in range(50)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(50)
    assert s.shipper.stop() == 0
    old_ino = os.stat(log).st_ino
    os.unlink(log)
    # Recreate until the file system hands the same inode back (it usually does at once).
    reused = False
    for i in range(200):
        open(log, "w").close()
        if os.stat(log).st_ino == old_ino:
            reused = True
            break
        os.rename(log, s.tmp / f"spare-{i}")
    if not reused:
        pytest.skip("the file system did not reuse the inode")
    new = append_lines(log, [f"new-{i:03d}-" + "n" * 60 for i in range(60)])
    s.start_shipper()
    events = s.wait_events(110)
    assert by_origin([e for e in events if e["message"].startswith("new-")]) == \
        {(str(log), o): t for o, t in new}


def test_thousand_files(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_top="queue: {max_events: 8192}")
    for i in range(1000):
        append_lines(s.logs / f"f{i:04d}.log", [f"f{i}-a", f"f{i}-b", f"f{i}-c"])
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(3000)
    assert len(set(messages(events))) == 3000
    assert s.ship_metric("sluice_shipper_files_open") == 1000


def test_harvester_limit_rotates_through_every_file(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="    harvester_limit: 3")
    for i in range(20):
        append_lines(s.logs / f"f{i:02d}.log", [f"f{i}-{j}" for j in range(10)])
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(200)
    assert len(set(messages(events))) == 200
    assert s.ship_metric("sluice_shipper_files_open") <= 3


def test_harvester_limit_ships_every_line_of_thousands_of_files(tmp_path, procs):
    """harvester_limit: 2 with 3000 files: all wait their turn (admission must not
    be quadratic in the waiting files) and every line arrives exactly once."""
    s = Stack(tmp_path, procs, extra_input="    harvester_limit: 2",
              extra_top="queue: {max_events: 8192}")
    n = 3000
    for i in range(n):
        append_lines(s.logs / f"f{i:04d}.log", [f"f{i}-a", f"f{i}-b"])
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(2 * n)
    got = messages(events)
    assert len(got) == len(set(got)) == 2 * n
    assert set(got) == {f"f{i}-{x}" for i in range(n) for x in "ab"}
    assert s.ship_metric("sluice_shipper_files_open") <= 2


def test_close_inactive_stays_closed_until_the_file_grows(tmp_path, procs):
    """close_inactive with a scan_frequency below a second: the idle file is closed,
    later scans do not reopen it while it has not grown, and a write reopens it."""
    s = Stack(tmp_path, procs, extra_input="    close_inactive: 1s\n    scan_frequency: 200ms")
    log = s.logs / "app.log"
    append_lines(log, [f"first-{i}" for i in range(10)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(10)
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 0, timeout=10,
             what="the idle file closed by close_inactive")
    # Stays closed over several scans (every 200ms) while the file does not grow.
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        assert s.ship_metric("sluice_shipper_files_open") == 0, "reopened without growing"
        time.sleep(0.1)
    append_lines(log, ["after-idle"])
    events = s.wait_events(11)
    assert sorted(messages(events)) == sorted([f"first-{i}" for i in range(10)] + ["after-idle"])
    # And it is closed again once idle.
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 0, timeout=10,
             what="closed again")
    s.stop_all()


def test_rotated_away_file_is_closed_once_deleted(tmp_path, procs):
    """A file renamed out of the glob and then deleted is closed within seconds
    (close_inactive is the default 5m, so it is not what closes it)."""
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, [f"old-{i}" for i in range(20)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(20)
    rotated = s.logs / "app.log.1"
    os.rename(log, rotated)
    append_lines(log, [f"new-{i}" for i in range(5)])
    s.wait_events(25)
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 2, what="both files open")
    os.unlink(rotated)
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 1, timeout=3,
             what="the deleted rotated file closed")
    events = s.events()
    assert len(events) == len(set(messages(events))) == 25
    s.stop_all()


def test_recursive_glob_and_new_subdirectories(tmp_path, procs):
    s = Stack(tmp_path, procs, paths=[f"{tmp_path}/logs/**/*.log"])
    (s.logs / "a").mkdir()
    append_lines(s.logs / "top.log", ["top"])
    append_lines(s.logs / "a" / "one.log", ["one"])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(2)
    deep = s.logs / "b" / "c" / "d"
    deep.mkdir(parents=True)
    append_lines(deep / "deep.log", ["deep"])
    append_lines(s.logs / "a" / "skip.txt", ["not matched"])
    events = s.wait_events(3)
    assert sorted(messages(events)) == ["deep", "one", "top"]


JAVA = """2026-11-27 06:00:00,123 ERROR [main] c.e.App - request failed
java.lang.IllegalStateException: boom
\tat com.example.App.handle(App.java:42)
\tat com.example.App.main(App.java:10)
Caused by: java.io.IOException: disk
\t... 2 more
2026-11-27 06:00:01,000 INFO [main] c.e.App - next
"""


def test_multiline_java_stack_trace(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="""    multiline:
      pattern: '^\\d{4}-\\d{2}-\\d{2} '
      negate: true
      match: after
      timeout: 200ms""")
    log = s.logs / "app.log"
    log.write_text(JAVA)
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(2)
    first, second = sorted(events, key=lambda e: e["log"]["offset"])
    assert first["message"] == JAVA.split("\n2026-11-27 06:00:01")[0]
    assert first["log"]["flags"] == ["multiline"]
    assert first["log"]["offset"] == 0
    assert second["message"] == "2026-11-27 06:00:01,000 INFO [main] c.e.App - next"
    assert "flags" not in second["log"]


def test_kill9_mid_stream_loses_nothing(tmp_path, procs):
    s = Stack(tmp_path, procs)
    s.start_aggregator()
    s.start_shipper()
    w = Writer(str(s.logs / "app.log"), 20000, batch=200)
    w.start()
    wait_for(lambda: len(s.events()) >= 3000, what="some events")
    s.shipper.kill9()
    w.join(120)
    assert w.error is None
    s.start_shipper()
    want = expected_lines(20000)
    wait_for(lambda: want <= set(messages(s.events())), timeout=120, what="every line")
    got = messages(s.events())
    dups = len(got) - len(set(got))
    # Re-sent after a crash: at most what was unACKed or ACKed but not yet in the
    # registry (queue.max_events + one registry.flush of ACKs).
    assert dups <= 4096 + 4096, f"{dups} duplicates"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_aggregator_outage_with_growing_files_bounded_memory(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_top="queue: {max_events: 1000}")
    s.start_aggregator()
    s.start_shipper()
    log = s.logs / "app.log"
    append_lines(log, ["warm-up"])
    s.wait_events(1)
    assert s.aggregator.stop() == 0
    baseline = rss_kb(s.shipper.pid)
    n = 60000
    with open(log, "a") as f:
        for i in range(n):
            f.write(f"outage {i:06d} " + "p" * 150 + "\n")
    wait_for(lambda: s.ship_metric("sluice_shipper_queue_events") == 1000, what="queue full")
    peak = rss_kb(s.shipper.pid)
    assert s.ship_metric("sluice_shipper_lines_read_total") <= 1 + 1000 + 2048
    s.start_aggregator()
    events = s.wait_events(n + 1)
    assert len(set(messages(events))) == n + 1
    # 60k lines of 170 bytes would be ~30 MB in events: the queue keeps it to ~1000.
    assert peak - baseline < 8 * 1024, f"RSS grew {peak - baseline} kB"


def test_registry_corruption_starts_from_the_backup(tmp_path, procs):
    s = Stack(tmp_path, procs)
    log = s.logs / "app.log"
    append_lines(log, [f"a-{i}" for i in range(20)])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(20)
    reg = tmp_path / "registry" / "registry.json"
    wait_for(lambda: reg.exists() and f'"offset":{os.path.getsize(log)}' in reg.read_text(),
             what="flush 1")
    append_lines(log, [f"b-{i}" for i in range(5)])
    s.wait_events(25)
    # The second flush keeps the first as registry.json.bak.
    wait_for(lambda: (tmp_path / "registry" / "registry.json.bak").exists(), what="backup")
    assert s.shipper.stop() == 0
    (tmp_path / "registry" / "registry.json").write_text('{"version":1,"entries":[{"de')
    s.start_shipper()
    append_lines(log, ["c-0"])
    wait_for(lambda: "c-0" in messages(s.events()), what="new line after restart")
    got = messages(s.events())
    assert set(got) == {f"a-{i}" for i in range(20)} | {f"b-{i}" for i in range(5)} | {"c-0"}
    assert len(got) - len(set(got)) <= 25  # re-sent since the backup, bounded
    assert "corrupt" in s.shipper.logtext()
    assert list((tmp_path / "registry").glob("registry.json.corrupt-*"))


def test_sighup_adds_an_input_and_bad_config_keeps_running(tmp_path, procs):
    s = Stack(tmp_path, procs)
    other = tmp_path / "other"
    other.mkdir()
    append_lines(s.logs / "a.log", ["from-a"])
    append_lines(other / "b.log", ["from-b"])
    s.start_aggregator()
    s.start_shipper()
    s.wait_events(1)
    text = s.ship_cfg.read_text()
    s.ship_cfg.write_text(text.replace(f'["{s.logs}/*.log"]', f'["{s.logs}/*.log", "{other}/*.log"]')
                          .replace("paths: ['", f"paths: ['{other}/*.log', '"))
    s.shipper.send(signal.SIGHUP)
    events = s.wait_events(2)
    assert sorted(messages(events)) == ["from-a", "from-b"]
    s.ship_cfg.write_text(text + "\nbogus_key: 1\n")
    s.shipper.send(signal.SIGHUP)
    wait_for(lambda: "keeping the running configuration" in s.shipper.logtext(), what="reject")
    append_lines(s.logs / "a.log", ["still-running"])
    events = s.wait_events(3)
    assert s.shipper.alive()

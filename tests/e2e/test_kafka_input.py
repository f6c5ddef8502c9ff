"""The aggregator's kafka input against a real broker (Apache Kafka 4.x, KRaft,
started once for this module by tests/servers/kafka with 4 partitions per
topic): messages produced with kcat, read by sluice-aggregator's consumers,
written by the file output.

- every message exactly once, with @metadata.kafka usable by `when` and by a
  path template, a non-JSON value kept as a tagged plain event, offsets
  committed (a restart in the same group reads only what is new), next to a
  Lumberjack input in the same process;
- two aggregators in one group: the union is exactly once; kill -9 of one
  mid-stream: the other takes its partitions, nothing is lost, and the
  duplicates are bounded by what the killed one delivered and had not yet
  committed (measured and asserted).

Without a broker or kcat the module is skipped, unless SLUICE_REQUIRE_SERVERS is set."""

import json
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (AGGREGATOR, DEADLINE, SHIPPER, free_port, metrics_of, read_ndjson, wait_for,
                      wait_port, write_config)
from ljclient import LJClient
from test_filebeat import filebeat_bin  # noqa: F401 (fixture)
from test_kafka import Broker, _unavailable

COMMIT_MS = 300
CONSUMED = 'sluice_aggregator_kafka_messages_total{result="consumed"}'
DELIVERED = 'sluice_aggregator_kafka_messages_total{result="delivered"}'
COMMITS_OK = 'sluice_aggregator_kafka_commits_total{result="ok"}'


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if not shutil.which("kcat"):
        _unavailable("kcat is not installed (apt-get install -y kcat)")
    b = Broker(tmp_path_factory.mktemp("kafka-in-run"))
    # Partitions to share in a group; no delay before the first rebalance.
    b.env["KAFKA_SETTINGS"] = "num.partitions=4 group.initial.rebalance.delay.ms=0"
    err = b.start()
    if err:
        b.stop()
        _unavailable("tests/servers/kafka start failed:\n" + err)
    yield b
    b.stop()


def topic_name():
    return "sluice-in-" + uuid.uuid4().hex[:12]


def produce(broker, topic, values):
    """values: (key, value) byte strings; kcat -P with ':' as the key delimiter."""
    data = b"".join(k + b":" + v + b"\n" for k, v in values)
    subprocess.run(["kcat", "-P", "-b", broker.address, "-t", topic, "-K:", "-z", "none"],
                   input=data, check=True, timeout=120)


def events(start, n):
    return [(b"k%d" % i, json.dumps({"n": i, "message": "m%d" % i}).encode())
            for i in range(start, start + n)]


class Agg:
    """One sluice-aggregator with kafka inputs and file outputs in its own directory."""

    def __init__(self, tmp_path, procs, name, inputs, outputs, extra_top=""):
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.metrics_port = free_port()
        self.cfg = write_config(self.dir / "aggregator.yml", f"""
inputs:
{inputs}
outputs:
{outputs.replace("DIR", str(self.dir))}
metrics:
  listen: 127.0.0.1:{self.metrics_port}
shutdown_timeout: 10s
{extra_top}""")
        self.procs = procs
        self.proc = None

    def start(self):
        self.proc = self.procs([AGGREGATOR, "-c", str(self.cfg)], str(self.dir / "agg.log"))
        wait_port(self.metrics_port, self.proc)
        return self

    def metrics(self):
        return metrics_of(self.metrics_port)

    def metric(self, name):
        return self.metrics().get(name, 0)

    def events(self, pattern="out*.ndjson"):
        out = []
        for p in sorted(self.dir.glob(pattern)):
            out.extend(read_ndjson(p))
        return out


class Shipper:
    """sluice-shipper with output.kafka, tailing tmp/<name>/logs/*.log."""

    def __init__(self, tmp_path, procs, name, broker, topic, key="%{[log][offset]}"):
        self.dir = tmp_path / name
        self.logs = self.dir / "logs"
        self.logs.mkdir(parents=True)
        self.metrics_port = free_port()
        self.cfg = write_config(self.dir / "shipper.yml", f"""
inputs:
  - id: app
    paths: ["{self.logs}/*.log"]
    start_position: beginning
    fields: {{service: web}}
output:
  flush_interval: 50ms
  kafka:
    hosts: ["{broker.address}"]
    topic: "{topic}"
    key: "{key}"
registry:
  path: {self.dir}/registry
  flush: 100ms
metrics:
  listen: 127.0.0.1:{self.metrics_port}
""")
        self.procs = procs
        self.proc = None

    def start(self):
        self.proc = self.procs([SHIPPER, "-c", str(self.cfg)], str(self.dir / "shipper.log"))
        wait_port(self.metrics_port, self.proc)
        return self

    def metric(self, name):
        return metrics_of(self.metrics_port).get(name, 0)

    def append(self, lines):
        with open(self.logs / "app.log", "a") as f:
            f.write("".join(line + "\n" for line in lines))


def kafka_input(broker, topics, group, extra=""):
    topics = [topics] if isinstance(topics, str) else topics
    return f"""  - kafka:
      bootstrap_servers: "{broker.address}"
      topics: {json.dumps(topics)}
      group_id: "{group}"
      codec: json
      auto_offset_reset: earliest
      auto_commit_interval_ms: {COMMIT_MS}
      session_timeout_ms: 6000
      heartbeat_interval_ms: 1000
{extra}"""


FILE_OUT = """  - file:
      path: "DIR/out.ndjson"
"""


def test_every_message_once_with_metadata_and_commits(tmp_path, procs, broker):
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    # What Filebeat's kafka output writes: its own @metadata is kept, kafka's added.
    filebeat = {"@timestamp": "2026-01-02T03:04:05.000Z", "message": "from-filebeat",
                "@metadata": {"beat": "filebeat", "type": "_doc", "version": "7.17.29"}}
    produce(broker, topic, events(0, 3000) + [(b"bad", b"not json {"),
                                              (b"fb", json.dumps(filebeat).encode())])
    lj_port = free_port()
    inputs = f"""  - beats:
      listen: 127.0.0.1:{lj_port}
""" + kafka_input(broker, topic, group)
    # A path template and a `when` condition on the Kafka metadata.
    outputs = """  - file:
      path: "DIR/out-p%{[@metadata][kafka][partition]}.ndjson"
  - file:
      path: "DIR/zero.ndjson"
      when: {field: "[@metadata][kafka][partition]", equals: 0}
"""
    a = Agg(tmp_path, procs, "a", inputs, outputs).start()
    wait_for(lambda: len(a.events("out-p*.ndjson")) == 3002, what="3002 events")
    # The Lumberjack input runs side by side.
    c = LJClient(lj_port)
    c.send_window([{"message": "from-beats"}])
    assert c.read_acks(1) == [(b"2", 1)]
    c.close()
    wait_for(lambda: a.metric(DELIVERED) == 3002, what="3002 delivered")
    evs = a.events("out-p*.ndjson")
    kafka_evs = [e for e in evs if "kafka" in e.get("@metadata", {})]
    assert len(kafka_evs) == 3002
    good = [e for e in kafka_evs if "n" in e]
    assert sorted(e["n"] for e in good) == list(range(3000))
    fb = [e for e in kafka_evs if e.get("message") == "from-filebeat"]
    assert len(fb) == 1 and fb[0]["@timestamp"] == "2026-01-02T03:04:05.000Z"
    assert fb[0]["@metadata"]["beat"] == "filebeat"
    assert fb[0]["@metadata"]["version"] == "7.17.29"
    assert fb[0]["@metadata"]["kafka"]["key"] == "fb"
    bad = [e for e in kafka_evs if "n" not in e and e is not fb[0]]
    assert len(bad) == 1 and bad[0]["message"] == "not json {"
    assert bad[0]["tags"] == ["_jsonparsefailure"]
    assert bad[0]["@metadata"]["kafka"]["key"] == "bad"
    seen = set()
    for p in range(4):
        for e in read_ndjson(a.dir / f"out-p{p}.ndjson"):
            if "from-beats" == e.get("message"):
                continue
            k = e["@metadata"]["kafka"]
            assert k["partition"] == p and k["topic"] == topic
            assert k["consumer_group"] == group and isinstance(k["timestamp"], int)
            if "n" in e:
                assert k["key"] == "k%d" % e["n"] and e["message"] == "m%d" % e["n"]
            seen.add((p, k["offset"]))
    assert len(seen) == 3002  # (partition, offset) unique: nothing twice
    zero = read_ndjson(a.dir / "zero.ndjson")
    assert zero and all(e["@metadata"]["kafka"]["partition"] == 0 for e in zero)
    assert len(zero) == sum(1 for p, _ in seen if p == 0)
    assert any(e.get("message") == "from-beats" for e in evs)
    m = a.metrics()
    assert m[CONSUMED] == 3002
    assert m["sluice_aggregator_kafka_decode_failures_total"] == 1
    assert m["sluice_aggregator_kafka_rebalances_total"] >= 1
    # Every partition's lag reaches 0 once its offsets are committed.
    wait_for(lambda: all(a.metrics().get(
        f'sluice_aggregator_kafka_consumer_lag{{topic="{topic}",partition="{p}"}}', -1) == 0
        for p in range(4)), what="lag 0 on 4 partitions")
    wait_for(lambda: a.metric(COMMITS_OK) >= 1, what="a commit")
    assert a.metrics().get('sluice_aggregator_kafka_commits_total{result="failed"}', 0) == 0
    assert a.proc.stop() == 0

    # Same group again, two consumer threads: the committed offsets hold, only new
    # messages come; a reload (SIGHUP) keeps the consumers going.
    b = Agg(tmp_path, procs, "b",
            kafka_input(broker, topic, group, "      consumer_threads: 2\n"), FILE_OUT).start()
    produce(broker, topic, events(5000, 100))
    wait_for(lambda: len(b.events()) >= 100, what="100 new events")
    b.proc.send(signal.SIGHUP)
    wait_for(lambda: b.metric('sluice_aggregator_reloads_total{result="ok"}') == 1,
             what="reload")
    produce(broker, topic, events(6000, 100))
    wait_for(lambda: b.metric(DELIVERED) == 200, what="200 delivered")
    assert sorted(e["n"] for e in b.events()) == list(range(5000, 5100)) + list(
        range(6000, 6100))
    wait_for(lambda: all("consumer %d assigned" % i in b.proc.logtext() for i in (0, 1)),
             what="both consumer threads in the group")
    assert b.proc.stop() == 0


def test_two_aggregators_share_a_group_and_survive_kill9(tmp_path, procs, broker):
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    total = 20000
    produced = [0]
    stop = threading.Event()

    def producer():
        # ~4000 messages a second, in chunks, for the whole test.
        i = 0
        while i < total and not stop.is_set():
            produce(broker, topic, events(i, 200))
            i += 200
            produced[0] = i
            time.sleep(0.05)

    a = Agg(tmp_path, procs, "a", kafka_input(broker, topic, group), FILE_OUT).start()
    b = Agg(tmp_path, procs, "b", kafka_input(broker, topic, group), FILE_OUT).start()
    t = threading.Thread(target=producer)
    t.start()
    try:
        # Both members hold partitions and deliver.
        wait_for(lambda: len(a.events()) > 500 and len(b.events()) > 500,
                 what="both aggregators consuming")
        # What a had delivered here is committed within COMMIT_MS (async commit):
        # everything a writes after this may be uncommitted when it dies.
        delivered_before = a.metric(DELIVERED)
        time.sleep(COMMIT_MS / 1000 * 3)
        a.proc.kill9()
        a_lines = len(a.events())
        wait_for(lambda: produced[0] == total, timeout=120, what="all produced")
    finally:
        stop.set()
        t.join()

    def union_complete():
        return len({e["n"] for e in a.events() + b.events()}) == total

    wait_for(union_complete, timeout=DEADLINE + 30, what=f"{total} distinct events")
    wait_for(lambda: b.metric(DELIVERED) == len(b.events()), what="b settled")
    ns = [e["n"] for e in a.events() + b.events()]
    counts = {}
    for n in ns:
        counts[n] = counts.get(n, 0) + 1
    dups = sum(c - 1 for c in counts.values())
    assert set(counts) == set(range(total))           # nothing lost
    assert max(b_count for b_count in counts.values()) <= 2
    # Each duplicate is one a wrote after its last sure commit and b read again.
    bound = a_lines - delivered_before
    print(f"kill -9: {dups} duplicates of {total}; bound (a's events after the sample) {bound}")
    assert dups <= bound
    b_ns = [e["n"] for e in b.events()]
    assert len(b_ns) == len(set(b_ns))                # b itself: exactly once
    assert b.metric("sluice_aggregator_kafka_rebalances_total") >= 2  # a joined, a died
    assert b.proc.stop() == 0


def test_failed_batches_are_consumed_again_and_not_committed(tmp_path, procs, broker):
    """An output that fails (a file that cannot be opened): nothing is committed past the
    failed batch; the consumer reads again from the last delivered offset."""
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    produce(broker, topic, events(0, 1000))
    blocked = tmp_path / "a" / "sub"
    out = """  - file:
      path: "DIR/sub/out.ndjson"
"""
    a = Agg(tmp_path, procs, "a", kafka_input(broker, topic, group), out)
    blocked.write_text("a file where the output wants a directory")
    a.start()
    failed = 'sluice_aggregator_output_events_total{output="file",result="failed"}'
    wait_for(lambda: a.metric(failed) >= 2000, what="batches failing again and again")
    assert a.metric(DELIVERED) == 0 and a.metric(COMMITS_OK) == 0
    assert a.metric(CONSUMED) > 1000  # read again after each failure
    blocked.unlink()
    wait_for(lambda: len(read_ndjson(blocked / "out.ndjson")) >= 1000, what="1000 events")
    wait_for(lambda: a.metric(DELIVERED) == 1000, what="1000 delivered")
    ns = [e["n"] for e in read_ndjson(blocked / "out.ndjson")]
    # Failed writes wrote nothing: every message is there, and at most one batch
    # twice (one the output took just as the one before it failed, read again
    # after the seek back: at least once, docs/aggregator.md).
    assert sorted(set(ns)) == list(range(1000))
    assert len(ns) - 1000 <= 500, len(ns)
    wait_for(lambda: a.metric(COMMITS_OK) >= 1, what="a commit")
    assert "consuming again from the last delivered offset" in a.proc.logtext()
    assert a.proc.stop() == 0


def test_messages_in_the_pipeline_are_held_to_max_pending_bytes(tmp_path, procs, broker):
    """A consumer stops taking messages once those it handed over and not yet
    delivered reach pipeline.max_pending_bytes (they count in
    sluice_aggregator_pending_bytes with the Lumberjack windows): 40 messages of
    ~200 KB, a 1 MiB budget, an output failing at first so that batches are read
    again and again; then every message (at least once) and the gauge back to 0."""
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    big = "x" * 200_000
    values = [(b"k%d" % i, json.dumps({"n": i, "message": big}).encode()) for i in range(40)]
    produce(broker, topic, values)
    largest = max(len(k) + len(v) for k, v in values)
    blocked = tmp_path / "a" / "sub"
    out = """  - file:
      path: "DIR/sub/out.ndjson"
"""
    a = Agg(tmp_path, procs, "a", kafka_input(broker, topic, group, "      max_poll_records: 2\n"),
            out, extra_top="pipeline:\n  max_pending_bytes: 1mb\n")
    blocked.write_text("a file where the output wants a directory")
    a.start()
    pending = "sluice_aggregator_pending_bytes"
    seen = []

    def sample(cond):
        m = a.metrics()
        seen.append(m.get(pending, 0))
        return cond(m)
    failed = 'sluice_aggregator_output_events_total{output="file",result="failed"}'
    wait_for(lambda: sample(lambda m: m.get(failed, 0) >= 40 and max(seen) > 0),
             what="batches failing and read again, some held in the pipeline")
    blocked.unlink()
    wait_for(lambda: sample(lambda m: m.get(DELIVERED, 0) == 40), what="40 delivered")
    wait_for(lambda: sample(lambda m: m.get(pending, 0) == 0), what="nothing pending")
    # One message may pass the budget (a message larger than it still goes through).
    assert 0 < max(seen) <= (1 << 20) + largest, max(seen)
    ns = [e["n"] for e in read_ndjson(blocked / "out.ndjson")]
    assert sorted(set(ns)) == list(range(40))
    # At least once: a batch consumed after the last failed one may have been
    # delivered before the consumer sought back; at most what the budget lets be
    # in flight is read twice (1 MiB of ~200 KB messages, plus one batch).
    assert len(ns) - 40 <= (1 << 20) // 200_000 + 2, sorted(ns)
    assert a.proc.stop() == 0


def test_shipper_to_kafka_to_two_aggregators_exactly_once(tmp_path, procs, broker):
    """The issue's layout: a shipper with output.kafka (topic from a field, key from the
    offset), two aggregators in one group reading it: every line exactly once; the
    shipper's registry advanced on delivery reports, so a restart sends nothing again."""
    prefix, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    topic = prefix + "-web"
    # The topic exists (4 partitions) and both members hold 2 before anything is shipped.
    produce(broker, topic, [(b"seed", b'{"message": "seed"}')])
    a = Agg(tmp_path, procs, "a", kafka_input(broker, topic, group), FILE_OUT).start()
    b = Agg(tmp_path, procs, "b", kafka_input(broker, topic, group), FILE_OUT).start()
    wait_for(lambda: all("assigned 2 partition(s)" in x.proc.logtext() for x in (a, b)),
             what="2 partitions each")
    sh = Shipper(tmp_path, procs, "s", broker, prefix + "-%{[fields.service]}")
    sh.append(["line-%d" % i for i in range(4000)])
    sh.start()
    wait_for(lambda: sh.metric("sluice_shipper_events_acked_total") == 4000,
             what="4000 delivered to Kafka")
    sh.append(["more-%d" % i for i in range(1000)])

    def all_in():
        return len(a.events()) + len(b.events()) >= 5001
    wait_for(all_in, what="5000 events and the seed in the union")
    wait_for(lambda: a.metric(DELIVERED) + b.metric(DELIVERED) == 5001, what="all delivered")
    evs = [e for e in a.events() + b.events() if e["message"] != "seed"]
    msgs = [e["message"] for e in evs]
    assert len(msgs) == 5000 and len(set(msgs)) == 5000
    assert set(msgs) == {"line-%d" % i for i in range(4000)} | {"more-%d" % i
                                                                for i in range(1000)}
    assert a.events() and b.events()  # the group shared the partitions
    for e in evs:
        k = e["@metadata"]["kafka"]
        assert k["topic"] == topic and k["key"] == str(e["log"]["offset"])
        assert e["@metadata"]["beat"] == "sluice" and e["fields"] == {"service": "web"}
    assert sh.metric("sluice_shipper_kafka_events_dropped_total") == 0
    assert sh.metric("sluice_shipper_kafka_delivery_seconds_count") >= 1
    assert sh.proc.stop() == 0
    # The registry has every line: a restart sends only what is new.
    sh.start()
    sh.append(["last"])
    wait_for(lambda: sh.metric("sluice_shipper_events_acked_total") == 1, what="1 more")
    wait_for(lambda: len(a.events()) + len(b.events()) == 5002, what="5002 events")
    assert sh.proc.stop() == 0
    assert a.proc.stop() == 0 and b.proc.stop() == 0


def test_windows_packed_for_lumberjack_reach_kafka_after_a_reload(tmp_path, procs, broker):
    """A shipper's sealed windows are kept compressed for its Lumberjack hosts
    (docs/shipper.md). Reloaded to output.kafka while its hosts are down, it must
    inflate them again and produce every event exactly once."""
    topic = topic_name()
    sh = Shipper(tmp_path, procs, "s", broker, topic)
    kafka_cfg = sh.cfg.read_text()
    dead = free_port()  # nothing listens there
    sh.cfg.write_text(kafka_cfg.replace(
        f"""  kafka:
    hosts: ["{broker.address}"]
    topic: "{topic}"
    key: "%{{[log][offset]}}"
""", f"""  hosts: ["127.0.0.1:{dead}"]
  compression: zstd
"""))
    assert "kafka" not in sh.cfg.read_text()
    sh.append(["packed-%d" % i for i in range(3000)])  # a full window of 2048 and the rest
    sh.start()
    wait_for(lambda: sh.metric("sluice_shipper_lines_read_total") == 3000, what="3000 read")
    wait_for(lambda: sh.metric(
        f'sluice_shipper_connection_errors_total{{host="127.0.0.1:{dead}"}}') >= 1,
        what="the dead host tried")
    assert sh.metric("sluice_shipper_events_acked_total") == 0
    sh.cfg.write_text(kafka_cfg)
    sh.proc.send(signal.SIGHUP)
    wait_for(lambda: sh.metric("sluice_shipper_events_acked_total") == 3000,
             what="3000 delivered to Kafka")
    assert "output rebuilt" in sh.proc.logtext()
    assert "does not inflate" not in sh.proc.logtext()
    p = subprocess.run(["kcat", "-C", "-b", broker.address, "-t", topic, "-o", "beginning",
                        "-e", "-q"], capture_output=True, text=True, timeout=120)
    msgs = [json.loads(line)["message"] for line in p.stdout.splitlines() if line.strip()]
    assert sorted(msgs) == sorted("packed-%d" % i for i in range(3000))
    assert sh.metric("sluice_shipper_kafka_events_dropped_total") == 0
    assert sh.proc.stop() == 0


def test_events_written_by_real_filebeat(tmp_path, procs, broker, filebeat_bin):  # noqa: F811
    """Filebeat 7.17.29's own output.kafka writes the events; the kafka input (codec
    json) reads them as the beats input reads Filebeat's Lumberjack events."""
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = ["fb-line-%d GET /x 200" % i for i in range(300)]
    (logs / "app.log").write_text("".join(line + "\n" for line in lines))
    a = Agg(tmp_path, procs, "a", kafka_input(broker, topic, group), FILE_OUT).start()
    home = tmp_path / "fb"
    for sub in ("data", "logs", "module"):
        (home / sub).mkdir(parents=True)
    cfg = write_config(home / "filebeat.yml", f"""
filebeat.inputs:
  - type: filestream
    id: kafka-e2e
    paths: [{json.dumps(str(logs) + "/*.log")}]
    prospector.scanner.check_interval: 100ms
output.kafka:
  hosts: ["{broker.address}"]
  topic: "{topic}"
  version: "2.6.0"
  required_acks: 1
logging.level: info
monitoring.enabled: false
http.enabled: false
""")
    procs([filebeat_bin, "-e", "--strict.perms=false", "-c", str(cfg), "--path.home", str(home),
           "--path.config", str(home), "--path.data", str(home / "data"),
           "--path.logs", str(home / "logs")], str(tmp_path / "filebeat.log"))
    wait_for(lambda: len(a.events()) >= 300, what="Filebeat's 300 events")
    evs = a.events()
    assert sorted(e["message"] for e in evs) == sorted(lines)
    for e in evs:
        assert e["agent"]["type"] == "filebeat" and e["agent"]["version"] == "7.17.29"
        assert e["log"]["file"]["path"] == str(logs / "app.log")
        assert lines[int(e["message"].split()[0].rsplit("-", 1)[1])] == e["message"]
        assert isinstance(e["log"]["offset"], int) and e["input"]["type"] == "filestream"
        assert e["@metadata"]["beat"] == "filebeat" and e["@metadata"]["version"] == "7.17.29"
        assert e["@metadata"]["kafka"]["topic"] == topic
        assert e["@timestamp"].endswith("Z") and "tags" not in e  # parsed, not plain text
    assert a.metric("sluice_aggregator_kafka_decode_failures_total") == 0
    assert a.proc.stop() == 0


def test_config_errors_are_reported_by_t(tmp_path):
    cfg = write_config(tmp_path / "bad.yml", """
input:
  listen: 127.0.0.1:0
inputs:
  - kafka:
      topics: []
      codec: avro
      consumer_threds: 2
      properties: {enable.auto.commit: "true"}
  - beats: {}
  - beats: {}
  - http: {}
outputs:
  - stdout: {}
""")
    p = subprocess.run([AGGREGATOR, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2
    err = p.stderr
    assert "'input' and 'inputs' cannot both be set" in err
    assert "codec" in err and "avro" in err
    assert "unknown option 'consumer_threds' (did you mean 'consumer_threads'?)" in err
    assert "'enable.auto.commit' is set by an option of this input" in err
    assert "only one beats input" in err
    assert "inputs[3]: each input is a map with one key" in err
    assert "'topics' must list at least one topic" in err
    ok = write_config(tmp_path / "ok.yml", """
inputs:
  - kafka: {topics: [logs], codec: json, bootstrap_servers: "k1:9092,k2:9092"}
outputs:
  - stdout: {}
""")
    p = subprocess.run([AGGREGATOR, "-t", "-c", str(ok)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr


def test_broker_restart_loses_nothing(tmp_path, procs, broker):
    """Runs last: it restarts the module's broker (same port)."""
    topic, group = topic_name(), "g-" + uuid.uuid4().hex[:8]
    ship_topic = topic + "-ship"
    produce(broker, topic, events(0, 5000))
    sh = Shipper(tmp_path, procs, "s", broker, ship_topic)
    sh.append(["before-%d" % i for i in range(500)])
    sh.start()
    wait_for(lambda: sh.metric("sluice_shipper_events_acked_total") == 500, what="500 acked")
    a = Agg(tmp_path, procs, "a", kafka_input(broker, [topic, ship_topic], group),
            FILE_OUT).start()
    wait_for(lambda: a.metric(DELIVERED) >= 1000, what="1000 delivered")
    ok = a.metric(COMMITS_OK)
    port = broker.port
    broker.stop()
    # Lines read while the broker is away are not acknowledged to the registry.
    sh.append(["during-%d" % i for i in range(500)])
    wait_for(lambda: sh.metric("sluice_shipper_events_sent_total") >= 1000,
             what="the shipper producing while the broker is down")
    assert sh.metric("sluice_shipper_events_acked_total") == 500
    err = broker.start(port)
    assert err is None, err
    produce(broker, topic, events(5000, 5000))
    wait_for(lambda: sh.metric("sluice_shipper_events_acked_total") == 1000,
             timeout=DEADLINE + 60, what="the shipper's 1000 acked after the restart")
    wait_for(lambda: len({e["n"] for e in a.events() if "n" in e}) == 10000,
             timeout=DEADLINE + 60, what="10000 distinct events")
    wait_for(lambda: len({e["message"] for e in a.events() if "n" not in e}) == 1000,
             what="the shipper's 1000 lines")
    assert sh.proc.stop() == 0
    ns = [e["n"] for e in a.events() if "n" in e]
    print(f"broker restart: {len(ns) - 10000} duplicates of 10000")
    assert set(ns) == set(range(10000))
    # Offsets are committed again once the broker is back.
    wait_for(lambda: a.metric(COMMITS_OK) > ok, what="a commit after the restart")
    assert a.proc.stop() == 0

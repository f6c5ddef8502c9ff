"""The kafka output end to end against a real broker (Apache Kafka 4.x, KRaft,
started once for this module by tests/servers/kafka in a private run dir):
sluice-shipper -> sluice-aggregator -> Kafka, read back with kcat.

Every test uses its own topic. The broker restart test stops and restarts the
broker on the same port in the middle of a stream and checks that nothing is
lost, that the shipper's ACKs were held while the broker was away, and how many
duplicates arrived (the idempotent producer should make that 0).

Without a broker (the start script failed, or kcat is missing) the module is
skipped, unless SLUICE_REQUIRE_SERVERS is set: then it fails."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (AGGREGATOR, DEADLINE, ROOT, free_port, read_ndjson, wait_for,
                      write_config)
from stack import Stack as BaseStack, append_origins

KAFKA = os.path.join(ROOT, "tests", "servers", "kafka")


def _unavailable(reason):
    if os.environ.get("SLUICE_REQUIRE_SERVERS"):
        pytest.fail(reason + " (SLUICE_REQUIRE_SERVERS is set)")
    pytest.skip(reason)


class Broker:
    """The broker of this module; restartable on the same port."""

    def __init__(self, run_dir):
        self.env = dict(os.environ, KAFKA_RUN_DIR=str(run_dir))
        self.address = None

    def start(self, port=None):
        env = dict(self.env)
        if port:
            env["KAFKA_PORT"] = str(port)
        p = subprocess.run([KAFKA, "start"], env=env, capture_output=True, text=True,
                           timeout=600)
        if p.returncode != 0:
            return p.stderr[-3000:] or p.stdout[-3000:] or "exit %d" % p.returncode
        self.address = p.stdout.strip().splitlines()[-1]
        return None

    def stop(self):
        subprocess.run([KAFKA, "stop"], env=self.env, capture_output=True, timeout=120)

    @property
    def port(self):
        return int(self.address.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    if not shutil.which("kcat"):
        _unavailable("kcat is not installed (apt-get install -y kcat)")
    b = Broker(tmp_path_factory.mktemp("kafka-run"))
    err = b.start()
    if err:
        b.stop()
        _unavailable("tests/servers/kafka start failed:\n" + err)
    yield b
    b.stop()


def unique_topic(prefix="sluice-test"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def consume(broker, topic):
    """Every message of topic (all partitions) as dicts with key, payload (parsed), offset."""
    p = subprocess.run(["kcat", "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-J", "-m", "10"], capture_output=True, text=True, timeout=120)
    out = []
    for line in p.stdout.splitlines():
        if line.strip():
            m = json.loads(line)
            m["value"] = json.loads(m["payload"])
            out.append(m)
    return out


def wait_messages(broker, topic, n, timeout=DEADLINE):
    """Waits until topic holds at least n messages; returns them."""
    def enough():
        msgs = consume(broker, topic)
        return msgs if len(msgs) >= n else False
    return wait_for(enough, timeout, interval=0.5, what=f"{n} messages in {topic}")


def origins(msgs):
    """{(path, offset): count} over the messages' values."""
    seen = {}
    for m in msgs:
        v = m["value"]
        k = (v["log"]["file"]["path"], v["log"]["offset"])
        seen[k] = seen.get(k, 0) + 1
    return seen


append_lines = append_origins


class Stack(BaseStack):
    """A shipper and an aggregator whose outputs are `outputs` (YAML list items).
    A long shipper timeout: the aggregator's held ACK is what is under test, not the
    shipper giving up on it and resending (which would duplicate by design)."""

    def __init__(self, tmp_path, procs, outputs, shutdown_timeout="10s", ship_timeout="5m"):
        super().__init__(tmp_path, procs, outputs=outputs, shutdown_timeout=shutdown_timeout,
                         ship_timeout=ship_timeout, flush_interval="50ms",
                         extra_input="    fields: {service: web}")


def kafka_output(broker, topic, extra=""):
    return f"""  - kafka:
      brokers: ["{broker}"]
      topic: "{topic}"
      key: "%{{[host][name]}}"
{extra}"""


KAFKA_OK = 'sluice_aggregator_output_events_total{output="kafka",result="ok"}'


def test_every_line_arrives_exactly_once_with_key_and_value(tmp_path, procs, kafka):
    prefix = unique_topic()
    # The topic is a template: "<prefix>-web" from fields.service.
    s = Stack(tmp_path, procs, kafka_output(kafka.address, prefix + "-%{[fields][service]}"))
    topic = prefix + "-web"
    a, b = s.logs / "a.log", s.logs / "b.log"
    expected = append_lines(a, [f"a-{i} GET /index.html 200 \u00e9t\u00e9 \"q\" \\ tab\t"
                                for i in range(1500)])
    expected.update(append_lines(b, [f"b-{i}" for i in range(500)]))
    s.start_aggregator()
    s.start_shipper()
    msgs = wait_messages(kafka.address, topic, 2000)
    expected.update(append_lines(a, [f"a-after-{i}" for i in range(300)]))
    msgs = wait_messages(kafka.address, topic, 2300)
    time.sleep(1)  # anything beyond the expected count would be a duplicate
    msgs = consume(kafka.address, topic)
    assert len(msgs) == 2300
    seen = origins(msgs)
    assert set(seen) == set(expected) and max(seen.values()) == 1
    host = socket.gethostname()
    for m in msgs:
        v = m["value"]
        assert v["message"] == expected[(v["log"]["file"]["path"], v["log"]["offset"])]
        assert "@metadata" not in v
        assert m["key"] == v["host"]["name"] == host
        assert v["fields"] == {"service": "web"}
    wait_for(lambda: s.acked() == 2300, what="shipper acked 2300")
    m = s.agg()
    assert m[KAFKA_OK] == 2300
    assert m['sluice_aggregator_output_events_total{output="kafka",result="failed"}'] == 0
    assert m['sluice_aggregator_output_request_seconds_count{output="kafka"}'] >= 1
    assert m["sluice_aggregator_events_acked_total"] == 2300
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_broker_restart_mid_stream_loses_nothing_and_holds_acks(tmp_path, procs, kafka):
    topic = unique_topic()
    s = Stack(tmp_path, procs, kafka_output(kafka.address, topic))
    log = s.logs / "app.log"
    expected = append_lines(log, [f"before-{i}" for i in range(1000)])
    s.start_aggregator()
    s.start_shipper()
    wait_for(lambda: s.acked() == 1000, what="the first 1000 ACKed")

    # A writer streams lines for the whole outage.
    lock = threading.Lock()
    stop_writing = threading.Event()

    def writer():
        i = 0
        while not stop_writing.is_set():
            lines = append_lines(log, [f"stream-{i + j}" for j in range(20)])
            with lock:
                expected.update(lines)
            i += 20
            time.sleep(0.05)

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(1.0)
        port = kafka.port
        kafka.stop()
        # Windows delivered right before the stop may still be ACKed: let that settle.
        time.sleep(1.5)
        held = s.acked()
        time.sleep(4)
        # The broker is away: whatever the aggregator received since is not ACKed.
        assert s.acked() == held, "the shipper got ACKs for events Kafka never had"
        m = s.agg()
        assert m["sluice_aggregator_events_received_total"] > m[
            "sluice_aggregator_events_acked_total"]
        assert m["sluice_aggregator_kafka_queue_messages"] > 0
        err = kafka.start(port=port)
        assert err is None, err
        assert kafka.port == port
        time.sleep(1.0)
    finally:
        stop_writing.set()
        t.join()
    total = len(expected)
    assert total > held
    wait_for(lambda: s.acked() == total, timeout=DEADLINE * 2, what=f"all {total} ACKed")
    msgs = wait_messages(kafka.address, topic, total)
    time.sleep(1)
    msgs = consume(kafka.address, topic)
    seen = origins(msgs)
    assert set(seen) == set(expected), "lines lost across the broker restart"
    duplicates = sum(seen.values()) - len(seen)
    print(f"broker restart: {total} lines, {duplicates} duplicate(s), {held} ACKed before "
          "the outage")
    # The idempotent producer retries with the same sequence numbers: the broker drops
    # the copies of batches it had already written.
    assert duplicates == 0
    for m in msgs:
        v = m["value"]
        assert v["message"] == expected[(v["log"]["file"]["path"], v["log"]["offset"])]
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_kafka_and_file_outputs_together(tmp_path, procs, kafka):
    topic = unique_topic()
    out = tmp_path / "events.ndjson"
    s = Stack(tmp_path, procs, kafka_output(kafka.address, topic) +
              f'  - file: {{path: "{out}"}}\n')
    expected = append_lines(s.logs / "app.log", [f"both-{i}" for i in range(1200)])
    s.start_aggregator()
    s.start_shipper()
    wait_for(lambda: s.acked() == 1200, what="1200 ACKed")
    msgs = consume(kafka.address, topic)
    assert len(msgs) == 1200 and set(origins(msgs)) == set(expected)
    events = read_ndjson(out)
    assert len(events) == 1200
    assert set((e["log"]["file"]["path"], e["log"]["offset"]) for e in events) == set(expected)
    assert "@metadata" in events[0]  # the file output keeps it by default; Kafka does not
    m = s.agg()
    assert m[KAFKA_OK] == 1200
    assert m['sluice_aggregator_output_events_total{output="file",result="ok"}'] == 1200
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_tiny_local_queue_slows_down_but_loses_nothing(tmp_path, procs, kafka):
    """queue_max_events: 5 makes librdkafka answer QUEUE_FULL all the time: the output
    pauses and resumes as deliveries free room; nothing is dropped or duplicated."""
    topic = unique_topic()
    s = Stack(tmp_path, procs, kafka_output(kafka.address, topic, "      queue_max_events: 5\n"))
    expected = append_lines(s.logs / "app.log", [f"q-{i}" for i in range(600)])
    s.start_aggregator()
    s.start_shipper()
    wait_for(lambda: s.acked() == 600, what="600 ACKed")
    seen = origins(consume(kafka.address, topic))
    assert set(seen) == set(expected) and max(seen.values()) == 1
    assert s.agg()[KAFKA_OK] == 600
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_oversized_event_is_dead_lettered_and_the_rest_delivered(tmp_path, procs, kafka):
    topic = unique_topic()
    dlq = tmp_path / "dlq"
    s = Stack(tmp_path, procs, kafka_output(
        kafka.address, topic, f"      message_max_bytes: 2kb\n      dead_letter_path: {dlq}\n"))
    log = s.logs / "app.log"
    expected = append_lines(log, [f"small-{i}" for i in range(50)])
    big = append_lines(log, ["B" * 5000])
    expected.update(append_lines(log, [f"small-after-{i}" for i in range(50)]))
    s.start_aggregator()
    s.start_shipper()
    wait_for(lambda: s.acked() == 101, what="all 101 ACKed (one dead-lettered)")
    msgs = consume(kafka.address, topic)
    assert len(msgs) == 100 and set(origins(msgs)) == set(expected)
    files = list(dlq.glob("dlq-*.ndjson"))  # the core's dead letter file: one per UTC day
    assert len(files) == 1 and len(files[0].name) == len("dlq-2026.11.27.ndjson")
    dead = read_ndjson(files[0])
    assert len(dead) == 1
    d = dead[0]
    assert d["error"] == "MSG_SIZE_TOO_LARGE"
    assert d["topic"] == topic and d["key"] == socket.gethostname()
    assert (d["event"]["log"]["file"]["path"], d["event"]["log"]["offset"]) == list(big)[0]
    assert d["event"]["message"] == "B" * 5000 and "@metadata" not in d["event"]
    m = s.agg()
    assert m['sluice_aggregator_output_events_total{output="kafka",result="dead_letter"}'] == 1
    assert m[KAFKA_OK] == 100  # delivered only: the dead-lettered event is not ok
    assert m['sluice_aggregator_kafka_delivery_errors_total{error="MSG_SIZE_TOO_LARGE"}'] == 1
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_unreachable_broker_holds_then_shutdown_and_redelivery(tmp_path, procs, kafka):
    """No broker at start: nothing is ACKed, SIGTERM ends within shutdown_timeout, and an
    aggregator pointed at the real broker then gets every line from the shipper's resend."""
    topic = unique_topic()
    dead = f"127.0.0.1:{free_port()}"
    s = Stack(tmp_path, procs, kafka_output(dead, topic), shutdown_timeout="2s")
    expected = append_lines(s.logs / "app.log", [f"held-{i}" for i in range(300)])
    s.start_aggregator()
    s.start_shipper()
    # The window is in the kafka output (its 300 messages queued in librdkafka), not
    # still on its way there: only then does the shutdown wait for the deadline.
    wait_for(lambda: s.agg().get("sluice_aggregator_kafka_queue_messages", 0) == 300,
             what="the 300 messages queued for the unreachable broker")
    time.sleep(1)
    assert s.acked() == 0
    assert s.agg()["sluice_aggregator_events_acked_total"] == 0
    t0 = time.monotonic()
    assert s.aggregator.stop() == 0
    assert time.monotonic() - t0 < 10
    assert "shutdown deadline reached" in s.aggregator.logtext()
    assert s.acked() == 0

    s.write_aggregator(kafka_output(kafka.address, topic))
    s.start_aggregator()
    wait_for(lambda: s.acked() == 300, what="300 ACKed after the resend")
    msgs = consume(kafka.address, topic)
    seen = origins(msgs)
    assert set(seen) == set(expected) and max(seen.values()) == 1
    assert s.shipper.stop() == 0
    assert s.aggregator.stop() == 0


def test_config_errors_name_file_line_column(tmp_path, kafka):
    """Errors of the option table come first, all of them; the checks the plugin makes
    once its options read cleanly (topic name, librdkafka properties) come in the next
    round (docs/configuration.md): -t may take two rounds, never a crash or a silent pass."""
    text = f"""input:
  listen: 127.0.0.1:0
outputs:
  - kafka:
      brokers: ["{kafka.address}"]
      topic: "bad topic"
      compression: brotli
      properties:
        bogus.key: 1
metrics:
  listen: 127.0.0.1:0
"""
    cfg = write_config(tmp_path / "aggregator.yml", text)
    p = subprocess.run([AGGREGATOR, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        f"{cfg}:7:20: outputs[0] (kafka): option 'compression' must be one of none, gzip, "
        "snappy, lz4, zstd, got 'brotli'",
    ]
    write_config(cfg, text.replace("compression: brotli", "compression: zstd"))
    p = subprocess.run([AGGREGATOR, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        f"{cfg}:6:14: outputs[0] (kafka): option 'topic': 'bad topic' is not a valid Kafka "
        "topic name (1-249 of [a-zA-Z0-9._-], not '.' or '..')",
        f"{cfg}:9:20: outputs[0] (kafka): properties: No such configuration property: "
        '"bogus.key"',
    ]
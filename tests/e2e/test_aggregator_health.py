"""The aggregator's /healthz and /readyz (docs/operations.md, Health): /healthz
is 503 once a window has been in the pipeline longer than
metrics.unhealthy_after, with a reason naming its age; /readyz is 200 only while
the listener accepts, the aggregator is healthy and it is not draining."""

import re
import socket

from conftest import AGGREGATOR, free_port, http_get, metrics_of, read_ndjson, wait_for, \
    wait_port, write_config
from ljclient import LJClient

OK = (200, "ok\n")
READY = (200, "ready\n")
UNHEALTHY = re.compile(r"the oldest pending window was submitted (\d+) ms ago "
                       r"\(unhealthy_after (\d+) ms\); (\d+) windows? pending\n")


def closed_port():
    """A loopback port nothing listens on (connects are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(procs, tmp_path, outputs, unhealthy_after="1s"):
    port, mport = free_port(), free_port()
    cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{port}"}}
outputs:
{outputs}
metrics: {{listen: "127.0.0.1:{mport}", unhealthy_after: {unhealthy_after}}}
shutdown_timeout: 2s
""")
    p = procs([AGGREGATOR, "-c", str(cfg)], str(tmp_path / "aggregator.log"))
    wait_port(port, p)
    wait_port(mport, p)
    return p, port, mport


def get(mport, path):
    return http_get(f"http://127.0.0.1:{mport}{path}")


def test_output_that_cannot_deliver_makes_healthz_and_readyz_503(tmp_path, procs):
    agg, port, mport = start(procs, tmp_path, f"""  - elasticsearch:
      hosts: ["http://127.0.0.1:{closed_port()}"]
      backoff: {{init: 100ms, max: 200ms}}
      timeout: 2s
""")
    assert get(mport, "/healthz") == OK
    assert get(mport, "/readyz") == READY
    c = LJClient(port)
    c.send_window([{"message": f"stuck-{i}"} for i in range(5)])
    status, body = wait_for(lambda: (r := get(mport, "/healthz"))[0] == 503 and r,
                            timeout=15, what="/healthz 503")
    m = UNHEALTHY.fullmatch(body)
    assert m, body
    assert int(m.group(1)) > 1000 and m.group(2) == "1000" and m.group(3) == "1"
    status, body = get(mport, "/readyz")
    assert status == 503 and "oldest pending window" in body, body
    assert metrics_of(mport)["sluice_aggregator_queue_events"] == 5
    c.close()
    agg.stop()


def test_working_output_stays_healthy_and_ready_while_windows_flow(tmp_path, procs):
    out = tmp_path / "events.ndjson"
    agg, port, mport = start(procs, tmp_path, f"""  - file: {{path: "{out}"}}""")
    c = LJClient(port)
    seq = 0
    for w in range(30):
        c.send_window([{"message": f"w{w}-{i}"} for i in range(10)], first_seq=1)
        assert c.read_acks(1) == [(b"2", 10)]
        seq += 10
        if w % 5 == 0:
            assert get(mport, "/healthz") == OK
            assert get(mport, "/readyz") == READY
    wait_for(lambda: len(read_ndjson(out)) == seq, what="every event written")
    assert get(mport, "/healthz") == OK
    assert get(mport, "/readyz") == READY
    c.close()
    assert agg.stop() == 0


def test_readyz_is_503_while_draining(tmp_path, procs):
    agg, port, mport = start(procs, tmp_path, f"""  - elasticsearch:
      hosts: ["http://127.0.0.1:{closed_port()}"]
      backoff: {{init: 100ms, max: 200ms}}
""", unhealthy_after="1h")
    c = LJClient(port)
    c.send_window([{"message": "held"}])  # keeps the drain going until shutdown_timeout
    wait_for(lambda: metrics_of(mport)["sluice_aggregator_queue_events"] == 1,
             what="the window in the pipeline")
    assert get(mport, "/readyz") == READY
    agg.send(__import__("signal").SIGTERM)
    status, body = wait_for(lambda: (r := get(mport, "/readyz"))[0] == 503 and r,
                            timeout=5, what="/readyz 503 while draining")
    assert "draining" in body, body
    assert get(mport, "/healthz") == OK  # healthy, merely not taking new work
    c.close()
    agg.stop()

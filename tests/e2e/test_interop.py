"""Interoperability with Elastic's own Lumberjack implementation, go-lumber
(tests/interop/ljpeer): its client is ACKed by our aggregator, and our shipper
delivers to its server, in plain TCP and over TLS / mutual TLS."""

import json
import os
import subprocess

import pytest

from conftest import (AGGREGATOR, ROOT, SHIPPER, free_port, metrics_of, read_ndjson, wait_for,
                      wait_port, write_config)
from stack import append_lines

LJPEER = os.path.join(ROOT, "build", "interop", "ljpeer")


@pytest.fixture(scope="module")
def ljpeer():
    if not os.path.exists(LJPEER):
        subprocess.run([os.path.join(ROOT, "tests", "interop", "build")], check=True)
    return LJPEER


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["sh", os.path.join(ROOT, "tests", "data", "tls", "gen.sh"), str(d)],
                   check=True, capture_output=True)
    return d


def start_peer_server(procs, ljpeer, tmp_path, extra=()):
    out = tmp_path / "peer.ndjson"
    log = tmp_path / "peer.log"
    p = procs([ljpeer, "server", "-listen", "127.0.0.1:0", "-out", str(out), "-quiet", *extra],
              str(log))
    def addr():
        text = log.read_text() if log.exists() else ""
        for line in text.splitlines():
            if line.startswith("listening "):
                return line.split()[1]
        assert p.alive(), text
        return None
    return p, wait_for(addr, what="ljpeer listening"), out


def shipper_config(tmp_path, logs, host, compression="zlib", ssl=""):
    port = free_port()
    cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - paths: ["{logs}/*.log"]
    start_position: beginning
output:
  hosts: ["{host}"]
  compression: {compression}
  flush_interval: 100ms
  bulk_max_events: 500
  backoff: {{init: 100ms, max: 500ms}}
  {ssl}
registry: {{path: "{tmp_path}/registry", flush: 100ms}}
metrics: {{listen: "127.0.0.1:{port}"}}
""")
    return cfg, port


def test_golumber_client_is_acked_by_our_aggregator(tmp_path, procs, ljpeer):
    port, mport = free_port(), free_port()
    out = tmp_path / "events.ndjson"
    cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{port}"}}
outputs: [{{file: {{path: "{out}"}}}}]
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    agg = procs([AGGREGATOR, "-c", str(cfg)], str(tmp_path / "aggregator.log"))
    wait_port(port, agg)
    src = tmp_path / "in.ndjson"
    with open(src, "w") as f:
        for i in range(5000):
            f.write(json.dumps({"@timestamp": "2026-11-27T06:00:00.000Z", "message": f"ev {i}",
                                "n": i, "nested": {"k": "\u00e9\"<>"}}) + "\n")
    r = subprocess.run([ljpeer, "client", "-addr", f"127.0.0.1:{port}", "-in", str(src),
                        "-batch", "300", "-compress", "3", "-pipeline", "4"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "acked 5000"
    events = read_ndjson(out)
    assert sorted(e["n"] for e in events) == list(range(5000))
    assert all(e["message"] == f"ev {e['n']}" and e["nested"] == {"k": "\u00e9\"<>"} for e in events)
    m = metrics_of(mport)
    assert m["sluice_aggregator_events_acked_total"] == 5000


def test_golumber_uncompressed_sync_client(tmp_path, procs, ljpeer):
    port, mport = free_port(), free_port()
    out = tmp_path / "events.ndjson"
    cfg = write_config(tmp_path / "aggregator.yml", f"""
input: {{listen: "127.0.0.1:{port}"}}
outputs: [{{file: {{path: "{out}"}}}}]
metrics: {{listen: "127.0.0.1:{mport}"}}
""")
    agg = procs([AGGREGATOR, "-c", str(cfg)], str(tmp_path / "aggregator.log"))
    wait_port(port, agg)
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps({"message": f"m{i}"}) + "\n" for i in range(777)))
    r = subprocess.run([ljpeer, "client", "-addr", f"127.0.0.1:{port}", "-in", str(src),
                        "-batch", "100", "-compress", "0", "-pipeline", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "acked 777", r.stderr
    assert sorted(e["message"] for e in read_ndjson(out)) == sorted(f"m{i}" for i in range(777))


def expected(log, lines):
    return {(str(log), o): t for o, t in lines}


def origin(events):
    got = {}
    for e in events:
        key = (e["log"]["file"]["path"], e["log"]["offset"])
        assert key not in got, f"duplicate {key}"
        got[key] = e["message"]
    return got


def test_our_shipper_delivers_to_golumber_server(tmp_path, procs, ljpeer):
    _, addr, out = start_peer_server(procs, ljpeer, tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = append_lines(logs / "app.log", [f"to go-lumber {i} \u00fc" for i in range(3000)])
    cfg, mport = shipper_config(tmp_path, logs, addr, compression="zlib")
    ship = procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_for(lambda: len(read_ndjson(out)) >= 3000, what="3000 events at go-lumber")
    assert origin(read_ndjson(out)) == expected(logs / "app.log", lines)
    wait_for(lambda: metrics_of(mport)["sluice_shipper_events_acked_total"] == 3000, what="acks")
    assert ship.stop() == 0


def test_wire_decision_zlib_levels_decode_and_zstd_frames_are_refused(ljpeer):
    """tests/interop/shipper.sh: our C frames at levels 3, 1, 9 and 0 (bare J) decode in
    go-lumber, every line once; Z and S frames are refused with nothing delivered."""
    build = os.path.dirname(SHIPPER)
    r = subprocess.run([os.path.join(ROOT, "tests", "interop", "shipper.sh")],
                       env={**os.environ, "SLUICE_BUILD": build, "LJPEER": ljpeer, "N": "2000"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_shipper_tls_full_verification(tmp_path, procs, ljpeer, certs):
    _, addr, out = start_peer_server(procs, ljpeer, tmp_path, [
        "-tls-cert", str(certs / "server.pem"), "-tls-key", str(certs / "server.key")])
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = append_lines(logs / "app.log", [f"secret {i}" for i in range(200)])
    cfg, mport = shipper_config(tmp_path, logs, addr, ssl=(
        f'ssl: {{enabled: true, certificate_authorities: ["{certs}/ca.pem"], '
        'verification_mode: full}'))
    procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_for(lambda: len(read_ndjson(out)) >= 200, what="200 events over TLS")
    assert origin(read_ndjson(out)) == expected(logs / "app.log", lines)


def test_shipper_mutual_tls(tmp_path, procs, ljpeer, certs):
    _, addr, out = start_peer_server(procs, ljpeer, tmp_path, [
        "-tls-cert", str(certs / "server.pem"), "-tls-key", str(certs / "server.key"),
        "-tls-client-ca", str(certs / "ca.pem")])
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = append_lines(logs / "app.log", [f"mtls {i}" for i in range(100)])
    cfg, _ = shipper_config(tmp_path, logs, addr, ssl=(
        f'ssl: {{enabled: true, certificate_authorities: ["{certs}/ca.pem"], '
        f'certificate: "{certs}/client.pem", key: "{certs}/client.key"}}'))
    procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_for(lambda: len(read_ndjson(out)) >= 100, what="100 events over mutual TLS")
    assert origin(read_ndjson(out)) == expected(logs / "app.log", lines)


def test_shipper_rejects_untrusted_server_and_delivers_nothing(tmp_path, procs, ljpeer, certs):
    _, addr, out = start_peer_server(procs, ljpeer, tmp_path, [
        "-tls-cert", str(certs / "untrusted.pem"), "-tls-key", str(certs / "untrusted.key")])
    logs = tmp_path / "logs"
    logs.mkdir()
    append_lines(logs / "app.log", ["must not leak"])
    cfg, mport = shipper_config(tmp_path, logs, addr, ssl=(
        f'ssl: {{enabled: true, certificate_authorities: ["{certs}/ca.pem"]}}'))
    ship = procs([SHIPPER, "-c", str(cfg)], str(tmp_path / "shipper.log"))
    wait_port(mport, ship)
    wait_for(lambda: metrics_of(mport).get(
        f'sluice_shipper_connection_errors_total{{host="{addr}"}}', 0) >= 2, what="errors")
    assert "TLS handshake failed" in ship.logtext()
    assert read_ndjson(out) == []


def test_shipper_tls_config_errors_are_reported_by_t(tmp_path):
    cfg = write_config(tmp_path / "s.yml", f"""
inputs: [{{paths: ["{tmp_path}/*.log"]}}]
output:
  ssl:
    enabled: true
    certificate_authorities: ["{tmp_path}/missing-ca.pem"]
""")
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{cfg}:5:5: output.ssl:" in r.stderr and "missing-ca.pem" in r.stderr

"""TLS on the aggregator's Lumberjack listener (input.ssl): a Python ssl client
with and without a client certificate under client_authentication none /
optional / required, refused certificates (untrusted, expired, missing),
plaintext and silent clients on a TLS port, `-t` checking the files, and a
SIGHUP certificate reload that keeps open connections (the certbot case).
The PKI comes from tests/data/tls/gen.sh."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import AGGREGATOR, DEADLINE, ROOT, wait_for, write_config
from ljclient import LJClient, window_frame
from test_aggregator import ack, base_config, events, start_agg  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["sh", os.path.join(ROOT, "tests", "data", "tls", "gen.sh"), str(d)],
                   check=True, capture_output=True, timeout=DEADLINE)
    return d


def tls_input(certdir, auth="none", extra=""):
    return ("  ssl:\n"
            "    enabled: true\n"
            f"    certificate: {certdir}/server.pem\n"
            f"    key: {certdir}/server.key\n"
            f"    certificate_authorities: [{certdir}/ca.pem]\n"
            f"    client_authentication: {auth}\n"
            f"{extra}")


def client_ctx(pki, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / cert), str(pki / (key or cert.replace(".pem", ".key"))))
    return ctx


def subject_cn(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]


def exchange(agg, ctx):
    """One window over TLS; returns the server certificate's CN."""
    c = LJClient(agg.port, ssl_context=ctx, timeout=DEADLINE)
    sent = events(2, "tls")
    c.send_window(sent, compress="zlib")
    assert c.read_raw(6) == ack(2)
    cn = subject_cn(c.sock)
    c.close()
    return cn, sent


def refused(agg, ctx):
    """The server refuses the client: the handshake or the first read fails."""
    try:
        c = LJClient(agg.port, ssl_context=ctx, timeout=DEADLINE)
        c.send_window(events(1))
        c.read_raw(6)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def tls_errors(agg, reason="tls_handshake"):
    return agg.metric(f'sluice_aggregator_protocol_errors_total{{reason="{reason}"}}') or 0


@pytest.mark.parametrize("auth", ["none", "optional", "required"])
def test_client_authentication_modes(start_agg, tmp_path, pki, auth):
    a = start_agg(tmp_path, base_config(tmp_path, tls_input(pki, auth)))
    written = []
    # A trusted client certificate is accepted in every mode.
    cn, sent = exchange(a, client_ctx(pki, "client.pem"))
    assert cn == "sluice-server"
    written += sent
    # No client certificate: refused only when required.
    if auth == "required":
        assert refused(a, client_ctx(pki))
    else:
        written += exchange(a, client_ctx(pki))[1]
    # A certificate from a CA the aggregator does not trust, or an expired one:
    # refused when asked for (with none, the server does not ask, so it is not sent).
    for cert in ("untrusted.pem", "expired.pem"):
        if auth == "none":
            written += exchange(a, client_ctx(pki, cert))[1]
        else:
            assert refused(a, client_ctx(pki, cert)), cert
    expect_errors = {"none": 0, "optional": 2, "required": 3}[auth]
    wait_for(lambda: tls_errors(a) == expect_errors, what=f"{expect_errors} handshake errors")
    assert a.out() == written
    log = a.proc.logtext()
    if auth != "none":
        assert "client certificate: CN=sluice-client,O=sluice test" in log
        assert "TLS handshake failed" in log


def test_plaintext_and_silent_clients_on_a_tls_port(start_agg, tmp_path, pki):
    a = start_agg(tmp_path, base_config(
        tmp_path, tls_input(pki, extra="    handshake_timeout: 500ms\n")))
    plain = LJClient(a.port)
    plain.send(window_frame(1))
    assert plain.wait_closed() == b""
    wait_for(lambda: tls_errors(a) == 1, what="plaintext client refused")
    silent = socket.create_connection(("127.0.0.1", a.port))
    t0 = time.monotonic()
    silent.settimeout(DEADLINE)
    assert silent.recv(100) == b""
    assert 0.4 < time.monotonic() - t0 < 5
    assert tls_errors(a, "tls_handshake_timeout") == 1
    assert exchange(a, client_ctx(pki))[0] == "sluice-server"


def test_encrypted_key_with_passphrase(start_agg, tmp_path, pki):
    # client.pem has no serverAuth usage, so the client skips verification here:
    # what is tested is the server loading an encrypted PKCS#8 key.
    ssl_in = ("  ssl:\n    enabled: true\n"
              f"    certificate: {pki}/client.pem\n"
              f"    key: {pki}/client-enc.key\n"
              "    key_passphrase: secret\n"
              "    supported_protocols: [TLSv1.3]\n")
    a = start_agg(tmp_path, base_config(tmp_path, ssl_in))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = LJClient(a.port, ssl_context=ctx)
    assert c.sock.version() == "TLSv1.3"
    c.send_window(events(1))
    assert c.read_raw(6) == ack(1)


def test_test_config_checks_the_files(tmp_path, pki):
    bad = tls_input(pki).replace(f"{pki}/server.key", f"{pki}/client.key")
    cfg = write_config(os.path.join(tmp_path, "bad.yml"), base_config(tmp_path, bad))
    r = subprocess.run([AGGREGATOR, "-t", "-c", cfg], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert r.returncode == 2
    assert r.stderr.startswith(f"{cfg}:6:10: input.ssl: key {pki}/client.key does not match "
                               f"certificate {pki}/server.pem"), r.stderr
    missing = tls_input(pki).replace("server.pem", "nope.pem")
    cfg = write_config(os.path.join(tmp_path, "missing.yml"), base_config(tmp_path, missing))
    r = subprocess.run([AGGREGATOR, "-t", "-c", cfg], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert r.returncode == 2
    assert f"{cfg}:5:18: input.ssl: cannot load certificate {pki}/nope.pem" in r.stderr
    ok = write_config(os.path.join(tmp_path, "ok.yml"), base_config(tmp_path, tls_input(pki)))
    r = subprocess.run([AGGREGATOR, "-t", "-c", ok], capture_output=True, text=True,
                       timeout=DEADLINE)
    assert (r.returncode, r.stdout) == (0, "configuration OK\n"), r.stderr


def test_sighup_reloads_certificates_without_dropping_connections(start_agg, tmp_path, pki):
    certs = tmp_path / "certs"
    certs.mkdir()
    for f in ("server.pem", "server.key", "ca.pem"):
        shutil.copy(pki / f, certs / f)
    a = start_agg(tmp_path, base_config(tmp_path, tls_input(certs)))
    old = LJClient(a.port, ssl_context=client_ctx(pki), timeout=DEADLINE)
    assert subject_cn(old.sock) == "sluice-server"
    first = events(1, "old1-")
    old.send_window(first)
    assert old.read_raw(6) == ack(1)

    # certbot renews: new files at the same paths, then `systemctl reload`.
    shutil.copy(pki / "server2.pem", certs / "server.pem")
    shutil.copy(pki / "server2.key", certs / "server.key")
    a.proc.send(signal.SIGHUP)
    wait_for(lambda: a.metric('sluice_aggregator_reloads_total{result="ok"}') == 1,
             what="reload ok")
    assert "input.ssl: certificates reloaded" in a.proc.logtext()

    second = events(2, "old2-")
    old.send_window(second, compress="zlib")  # the old connection keeps working
    assert old.read_raw(6) == ack(2)
    cn, third = exchange(a, client_ctx(pki))
    assert cn == "sluice-server-2"  # a new one sees the renewed certificate
    assert subject_cn(old.sock) == "sluice-server"

    # A half-written renewal (key of another cert) is refused; the current one stays.
    shutil.copy(pki / "client.key", certs / "server.key")
    a.proc.send(signal.SIGHUP)
    wait_for(lambda: a.metric('sluice_aggregator_reloads_total{result="failed"}') == 1,
             what="reload failed")
    cn, fourth = exchange(a, client_ctx(pki))
    assert cn == "sluice-server-2"
    old.send_window(events(1, "old3-"))
    assert old.read_raw(6) == ack(1)
    assert a.out() == first + second + third + fourth + events(1, "old3-")

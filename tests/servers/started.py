"""Module fixtures' bodies for the servers of tests/servers, shared by tests/e2e and
tests/deploy: start the server unless one is running, hand over its URL, stop it
afterwards if this module started it. A server that cannot start skips the module
(fails it with SLUICE_REQUIRE_SERVERS=1)."""

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def opensearch():
    """Generator: yields the URL of tests/servers/opensearch."""
    server = os.path.join(HERE, "opensearch")
    was_running = subprocess.run([server, "status"], capture_output=True).returncode == 0
    try:
        r = subprocess.run([server, "start"], capture_output=True, text=True, timeout=1200)
        ok, why = r.returncode == 0, r.stderr[-3000:]
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        msg = f"tests/servers/opensearch start failed:\n{why}"
        if os.environ.get("SLUICE_REQUIRE_SERVERS"):
            pytest.fail(msg)
        pytest.skip(msg)
    yield r.stdout.strip().splitlines()[-1]
    if not was_running:
        subprocess.run([server, "stop"], capture_output=True, timeout=120)

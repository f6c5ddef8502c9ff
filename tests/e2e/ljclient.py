"""A small, hand-written Lumberjack v2 client for the aggregator's end-to-end
tests: it builds frames byte by byte (so tests can also send broken ones) and
reads ACKs with deadlines. Integers are u32 big-endian (docs/protocol.md §1).

    c = LJClient(port)
    c.send_window([{"message": "a"}, {"message": "b"}], compress="zlib")
    assert c.read_acks(1) == [(b"2", 2)]
"""

import json
import socket
import struct
import time
import zlib

try:
    import zstandard
except ImportError:  # the zstd case is skipped without it
    zstandard = None


def window_frame(n, version=b"2"):
    return version + b"W" + struct.pack(">I", n)


def json_frame(seq, obj):
    data = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return b"2J" + struct.pack(">II", seq, len(data)) + data


def compressed_frame(frames, kind="zlib"):
    """One 'C' (zlib, RFC 1950) or 'Z' (zstd, sluice's extension) frame holding frames."""
    if kind == "zlib":
        data = zlib.compress(frames, 6)
        return b"2C" + struct.pack(">I", len(data)) + data
    if kind == "zstd":
        if zstandard is None:
            raise RuntimeError("python zstandard module not installed")
        data = zstandard.ZstdCompressor(level=3).compress(frames)
        return b"2Z" + struct.pack(">I", len(data)) + data
    raise ValueError(kind)


def encode_window(events, compress=None, first_seq=1):
    """W frame + the J frames (bare, or inside one C/Z frame) for events."""
    body = b"".join(json_frame(first_seq + i, e) for i, e in enumerate(events))
    if compress:
        body = compressed_frame(body, compress)
    return window_frame(len(events)) + body


class LJClient:
    """ssl_context (an ssl.SSLContext) makes it a TLS client; the handshake runs here."""

    def __init__(self, port, host="127.0.0.1", timeout=30, ssl_context=None,
                 server_hostname=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock,
                                                server_hostname=server_hostname or host)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def send_window(self, events, compress=None, first_seq=1):
        self.send(encode_window(events, compress, first_seq))

    def read_acks(self, n, timeout=None):
        """Reads exactly n ACK frames; returns [(version byte, seq)]."""
        end = time.monotonic() + (timeout or self.timeout)
        acks = []
        while len(acks) < n:
            while len(self.buf) < 6:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(acks)} of {n} ACKs: {acks!r}")
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {len(acks)} of {n} ACKs: {acks!r}")
                self.buf += chunk
            frame, self.buf = self.buf[:6], self.buf[6:]
            assert frame[1:2] == b"A", f"not an ACK frame: {frame!r}"
            acks.append((frame[0:1], struct.unpack(">I", frame[2:6])[0]))
        return acks

    def read_raw(self, n, timeout=None):
        """Exactly n raw bytes (for asserting the ACK bytes themselves)."""
        end = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"got {len(self.buf)} of {n} bytes: {self.buf!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(self.buf)} of {n} bytes")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_closed(self, timeout=None):
        """Returns the bytes received until the server closed; raises on timeout."""
        end = time.monotonic() + (timeout or self.timeout)
        got = self.buf
        self.buf = b""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"connection still open (received {got!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk

    def close(self):
        self.sock.close()

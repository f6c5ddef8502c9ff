"""`type: container`: real files in Docker's json-file and the CRI format, written
by a test writer that does what a container runtime and the kubelet do - splits
long messages into 16 KiB partial lines, interleaves stdout and stderr, rotates by
rename + new file and gzips old files - checked event by event: message, stream,
@timestamp from the runtime, log.offset of the first physical line, Kubernetes
names from the path, and the registry never past an incomplete partial group."""

import gzip
import json
import os
import shutil

from conftest import wait_for
from stack import Stack

CHUNK = 16 * 1024
CID = "0123456789abcdef" * 4
UID = "5b3e1f2a-9c1d-4e8f-a7b6-0c9d8e7f6a5b"


def rfc(i):
    """A fixed runtime time per message (nanoseconds, as runtimes write): never today's."""
    return f"2025-03-04T05:{(i // 60) % 60:02d}:{i % 60:02d}.{(i % 1000):03d}456789Z"


def want_ts(i):
    return f"2025-03-04T05:{(i // 60) % 60:02d}:{i % 60:02d}.{(i % 1000):03d}Z"


class Runtime:
    """Writes a container's log as Docker (json-file) or a CRI runtime does."""

    def __init__(self, path, fmt):
        self.path, self.fmt = str(path), fmt
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.f = open(self.path, "ab")
        self.rotations = 0

    def physical(self, stream, i, msg):
        """The physical lines of one message: (text, partial) pieces of <= 16 KiB."""
        pieces = [msg[k:k + CHUNK] for k in range(0, len(msg), CHUNK)] or [""]
        out = []
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            if self.fmt == "docker":
                out.append(json.dumps({"log": piece + ("\n" if last else ""), "stream": stream,
                                       "time": rfc(i)}, separators=(",", ":")) + "\n")
            else:
                out.append(f"{rfc(i)} {stream} {'F' if last else 'P'} {piece}\n")
        return [s.encode() for s in out]

    def write(self, lines):
        """Writes raw physical lines; returns the offset of the first."""
        off = self.f.tell()
        for b in lines:
            self.f.write(b)
        self.f.flush()
        return off

    def rotate(self):
        """The kubelet's rotation: rename, a new file, older rotated files gzipped."""
        self.f.close()
        self.rotations += 1
        d = os.path.dirname(self.path)
        for name in os.listdir(d):
            old = os.path.join(d, name)
            if ".log." in name and not name.endswith(".gz"):
                with open(old, "rb") as src, gzip.open(old + ".gz", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.unlink(old)
        os.rename(self.path, f"{self.path}.20250304-0506{self.rotations:02d}")
        self.f = open(self.path, "ab")

    def close(self):
        self.f.close()


def container_stack(tmp_path, procs, glob, extra=""):
    return Stack(tmp_path, procs, paths=[str(tmp_path / glob)],
                 extra_input="    type: container\n    max_line_bytes: 2mb\n" + extra)


def pods_path(tmp_path, ns="shop", pod="web-7d9f", container="nginx"):
    return tmp_path / "pods" / f"{ns}_{pod}_{UID}" / container / "0.log"


def test_docker_json_partial_lines_and_interleaved_streams(tmp_path, procs):
    path = tmp_path / "containers" / f"web-7d9f_shop_nginx-{CID}.log"
    rt = Runtime(path, "docker")
    big = "".join(chr(ord("a") + k % 26) for k in range(1000 * 1000))  # 62 partial lines
    want = {}
    # A stdout message split in two, a whole stderr line between its pieces.
    p1 = rt.physical("stdout", 1, "x" * (CHUNK + 100))
    off1 = rt.write([p1[0]])
    off2 = rt.write(rt.physical("stderr", 2, "oops \"quoted\" \u00e9"))
    rt.write([p1[1]])
    want[off1] = ("x" * (CHUNK + 100), "stdout", 1)
    want[off2] = ("oops \"quoted\" \u00e9", "stderr", 2)
    off3 = rt.write(rt.physical("stdout", 3, big))
    want[off3] = (big, "stdout", 3)
    off4 = rt.write(rt.physical("stdout", 4, ""))
    want[off4] = ("", "stdout", 4)
    rt.close()
    s = container_stack(tmp_path, procs, "containers/*.log")
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(len(want))
    assert s.ship_metric("sluice_shipper_container_lines_invalid_total") == 0
    for e in events:
        off = e["log"]["offset"]
        msg, stream, i = want.pop(off)
        assert e["message"] == msg and e["stream"] == stream
        assert e["@timestamp"] == want_ts(i)
        assert e["input"]["type"] == "container"
        assert e["log"]["file"]["path"] == str(path)
        assert e["kubernetes"] == {"pod": {"name": "web-7d9f"}, "namespace": "shop",
                                   "container": {"name": "nginx"}}
        assert e["container"] == {"id": CID, "runtime": "docker"}
        assert "flags" not in e["log"]
    assert want == {}
    s.stop_all()


def test_cri_partial_lines_stream_filter_and_pod_path(tmp_path, procs):
    path = pods_path(tmp_path)
    rt = Runtime(path, "cri")
    want = {}
    for i in range(40):
        stream = "stderr" if i % 3 == 0 else "stdout"
        msg = f"message {i} " + "y" * (i * 1000)   # up to 39 kB: up to 3 physical lines
        off = rt.write(rt.physical(stream, i, msg))
        if stream == "stderr":
            want[off] = (msg, i)
    big = "".join(chr(ord("A") + k % 26) for k in range(1024 * 1024 - 100))  # 64 pieces
    want[rt.write(rt.physical("stderr", 40, big))] = (big, 40)
    rt.write([f"{rfc(99)} stdout F not a line of ours\n".encode().replace(b" stdout", b" stdin")])
    rt.close()
    s = container_stack(tmp_path, procs, "pods/*/*/*.log", "    stream: stderr\n")
    s.start_aggregator()
    s.start_shipper()
    # 15 stderr messages (one of 1 MiB) and the line that is not CRI, shipped as it is.
    events = s.wait_events(len(want) + 1)
    bare = [e for e in events if "stream" not in e]
    assert len(bare) == 1 and bare[0]["message"].endswith("stdin F not a line of ours")
    assert "container" not in bare[0] and bare[0]["kubernetes"]["pod"]["uid"] == UID
    for e in events:
        if "stream" not in e:
            continue
        msg, i = want.pop(e["log"]["offset"])
        assert e["message"] == msg and e["stream"] == "stderr"
        assert e["@timestamp"] == want_ts(i)
        assert e["kubernetes"] == {"pod": {"name": "web-7d9f", "uid": UID}, "namespace": "shop",
                                   "container": {"name": "nginx"}}
        assert e["container"] == {"runtime": "cri"}
    assert want == {}
    assert s.ship_metric("sluice_shipper_container_lines_invalid_total") == 1
    m = s.ship_metric('sluice_shipper_lines_dropped_total{reason="stream"}')
    assert m == sum(1 for i in range(40) if i % 3 != 0 for _ in
                    range(max(1, -(-len(f"message {i} " + "y" * (i * 1000)) // CHUNK))))
    s.stop_all()


def test_kubelet_rotation_loses_nothing(tmp_path, procs):
    path = pods_path(tmp_path, container="app")
    rt = Runtime(path, "cri")
    s = container_stack(tmp_path, procs, "pods/*/*/*.log")
    s.start_aggregator()
    s.start_shipper()
    total = 0
    for r in range(4):
        for i in range(250):
            n = r * 250 + i
            rt.write(rt.physical("stdout" if n % 2 else "stderr", n,
                                 f"msg {n:05d} " + "z" * (20000 if n % 50 == 0 else 10)))
            total += 1
        if r < 3:
            wait_for(lambda: len(s.events()) >= total - 200, what="progress before rotating")
            rt.rotate()
    rt.close()
    events = s.wait_events(total)
    got = sorted(e["message"][:9] for e in events)
    assert got == [f"msg {n:05d}" for n in range(total)]
    assert all(e["kubernetes"]["container"]["name"] == "app" for e in events)
    assert len(list(path.parent.glob("*.gz"))) == 2
    s.stop_all()


def test_registry_never_passes_an_incomplete_partial_group(tmp_path, procs):
    path = tmp_path / "containers" / f"api-1_prod_srv-{CID}.log"
    rt = Runtime(path, "cri")
    head = rt.physical("stdout", 7, "h" * (CHUNK + 5))
    rt.write(rt.physical("stdout", 6, "before"))
    start = rt.write([head[0]])                        # stdout P: incomplete
    rt.write(rt.physical("stderr", 8, "meanwhile"))    # a whole stderr line after it
    assert start > 0
    s = container_stack(tmp_path, procs, "containers/*.log")
    s.start_aggregator()
    s.start_shipper()
    events = s.wait_events(2)
    assert [e["message"] for e in events] == ["before", "meanwhile"]
    wait_for(lambda: s.acked() == 2, what="both lines ACKed")
    reg = tmp_path / "registry" / "registry.json"

    def offset():
        try:
            text = reg.read_text()
            return [e["offset"] for e in json.loads(text)["entries"]]
        except (OSError, ValueError, KeyError):
            return None
    # The registry is flushed every 100ms: give it a few flushes, then it must
    # still point at the start of the stdout group, not past the stderr line.
    wait_for(lambda: offset() == [start], what="registry at the partial group's start")
    s.shipper.stop()
    # The runtime finishes the message while the shipper is down.
    rt.write([head[1]])
    rt.close()
    s.start_shipper()
    # From the group's start: the stderr line again (at least once), and the joined one.
    events = s.wait_events(4)
    assert [e["message"] for e in events if e["stream"] == "stderr"] == ["meanwhile"] * 2
    joined = [e for e in events if e["stream"] == "stdout" and e["message"] != "before"]
    assert len(joined) == 1 and joined[0]["message"] == "h" * (CHUNK + 5)
    assert joined[0]["log"]["offset"] == start
    s.stop_all()


def test_pod_deleted_while_tailed(tmp_path, procs):
    path = pods_path(tmp_path, pod="job-1", container="worker")
    rt = Runtime(path, "docker")
    s = container_stack(tmp_path, procs, "pods/*/*/*.log")
    s.start_aggregator()
    s.start_shipper()
    for i in range(300):
        rt.write(rt.physical("stdout", i, f"work {i}"))
    # The last message is cut mid-way: its partial line is shipped when the file goes.
    rt.write(rt.physical("stdout", 300, "t" * (CHUNK + 1))[:1])
    rt.close()
    wait_for(lambda: len(s.events()) >= 300, what="300 events")
    shutil.rmtree(tmp_path / "pods" / f"shop_job-1_{UID}")
    wait_for(lambda: s.ship_metric("sluice_shipper_files_open") == 0, what="file closed")
    events = s.wait_events(301)
    assert sorted(e["message"] for e in events if e["message"].startswith("work")) == \
        sorted(f"work {i}" for i in range(300))
    assert [e["message"] for e in events if not e["message"].startswith("work")] == ["t" * CHUNK]
    s.stop_all()


def test_type_options_are_checked(tmp_path, procs):
    from conftest import SHIPPER
    import subprocess
    cfg = tmp_path / "s.yml"
    cfg.write_text(f"inputs:\n  - paths: [{tmp_path}/x.log]\n    stream: stdout\n"
                   f"registry: {{path: {tmp_path}/reg}}\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "'stream' is for 'type: container' only" in r.stderr
    cfg.write_text(f"inputs:\n  - paths: [{tmp_path}/x.log]\n    type: container\n"
                   f"    format: podman\nregistry: {{path: {tmp_path}/reg}}\n")
    r = subprocess.run([SHIPPER, "-t", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "format" in r.stderr


def test_pod_labels_and_node_from_a_fake_api_server(tmp_path, procs):
    """add_kubernetes_metadata with in_cluster: list + watch against the FAKE API
    server (no cluster here): labels (dedotted) and node of the pods of our node."""
    from conftest import wait_for as wait
    from fake_kube_api import FakeKubeAPI
    api = FakeKubeAPI(token="s3cret").start()
    try:
        (tmp_path / "token").write_text("s3cret\n")
        api.put_pod("shop", "web-1", "uid-w1", "node-a", {"app.kubernetes.io/name": "web"})
        api.put_pod("shop", "db-1", "uid-d1", "node-b", {"app": "db"})
        s = container_stack(tmp_path, procs, "containers/*.log", f"""    processors:
      - add_kubernetes_metadata:
          in_cluster: true
          api_url: "http://127.0.0.1:{api.port}"
          token_file: "{tmp_path}/token"
          ca_file: ""
          node: node-a
""")
        s.start_aggregator()
        s.start_shipper()
        wait(lambda: api.watching() == 1, what="the shipper watching pods")
        paths = {}
        for pod in ("web-1", "db-1", "api-1"):
            paths[pod] = Runtime(tmp_path / "containers" / f"{pod}_shop_c-{CID}.log", "cri")
        paths["web-1"].write(paths["web-1"].physical("stdout", 1, "from web"))
        paths["db-1"].write(paths["db-1"].physical("stdout", 2, "from db"))
        events = {e["message"]: e for e in s.wait_events(2)}
        web = events["from web"]["kubernetes"]
        assert web["labels"] == {"app_kubernetes_io/name": "web"}
        assert web["node"] == {"name": "node-a"} and web["pod"]["uid"] == "uid-w1"
        assert web["pod"]["name"] == "web-1" and web["namespace"] == "shop"
        # db-1 runs on another node: not listed for ours, so no labels.
        assert "labels" not in events["from db"]["kubernetes"]
        # A pod that appears later comes through the watch; a change of labels too.
        api.put_pod("shop", "api-1", "uid-a1", "node-a", {"app": "api"})
        api.put_pod("shop", "web-1", "uid-w1", "node-a", {"app.kubernetes.io/name": "web2"})
        n = [0]

        def labelled():
            n[0] += 1
            for pod in ("api-1", "web-1"):
                paths[pod].write(paths[pod].physical("stdout", n[0], f"{pod} {n[0]}"))
            evs = s.events()
            got = {e["message"].split()[0]: e["kubernetes"].get("labels") for e in evs
                   if e["message"].startswith(f"api-1 {n[0] - 1}") or
                   e["message"].startswith(f"web-1 {n[0] - 1}")}
            return got == {"api-1": {"app": "api"}, "web-1": {"app_kubernetes_io/name": "web2"}}
        wait(labelled, interval=0.2, what="labels from the watch")
        assert all(auth == "Bearer s3cret" for _, auth in api.requests)
        assert all("fieldSelector=spec.nodeName%3Dnode-a" in path for path, _ in api.requests)
        assert any("watch=1&resourceVersion=102" in path for path, _ in api.requests)
        s.stop_all()
    finally:
        api.stop()

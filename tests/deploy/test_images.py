"""The container images, built and run for real with Podman (no Docker engine here).

Both images are built from deploy/docker/Dockerfile, unchanged, on a Debian base
image tests/deploy/podman-setup makes with debootstrap (no registry is reachable).
Then the stack runs: a real OpenSearch on the host (tests/servers/opensearch), the
aggregator container (its config mounted read-only) writing to it, and the shipper
container tailing a host directory mounted at /var/log/containers that holds CRI
files named as the kubelet names them. Both containers run as the image's
unprivileged user on a read-only root filesystem; the only writable mount is the
shipper's registry. Asserted: every line indexed exactly once with its pod, namespace,
container name and id; /healthz and /metrics answer on the containers' ports; the
registry reached the end of every file.

Containers run in their own network namespace (slirp4netns) with their ports
published on the host's loopback at OS-chosen ports; the host's loopback is 10.0.2.2
inside, where OpenSearch and the published Lumberjack port are. Last, deploy/k8s
runs with `podman play kube` (changed only where this machine is not a cluster).

Podman's flags on these machines (runc, cgroupfs, explicit ulimits) and how the
base image is made: docs/deploy.md, section 9.

Skipped, with the reason, when podman or the base image is missing (see
tests/deploy/setup); SLUICE_REQUIRE_PODMAN=1 turns that skip into a failure.
"""

import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("SLUICE_DEPLOY_CACHE", os.path.join(ROOT, ".cache", "deploy"))
DOCKERFILE = os.path.join(ROOT, "deploy", "docker", "Dockerfile")
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
import started  # noqa: E402  (tests/servers/started.py)
DEADLINE = float(os.environ.get("SLUICE_TEST_DEADLINE", "30"))
BUILD_TIMEOUT = int(os.environ.get("SLUICE_IMAGE_BUILD_TIMEOUT", "1500"))

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# The VM's hard limits are below podman's defaults: without these, runc fails to start.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BASE = "docker.io/library/debian:bookworm"
# The names docker-compose.yml (dev) and deploy/k8s (0.1.0) use.
IMAGES = {t: [f"localhost/sluice-{t}:dev", f"localhost/sluice-{t}:0.1.0"]
          for t in ("aggregator", "shipper")}
# docker format: OCI image configs have no HEALTHCHECK, and podman would drop the Dockerfile's.
BUILD_FLAGS = ["--format", "docker", "--network=host", *ULIMITS]
# Bridge-like isolation with published ports, and a way back to the host's loopback
# (10.0.2.2), where tests/servers/opensearch listens.
NET = ["--network", "slirp4netns:allow_host_loopback=true"]
HOST = "10.0.2.2"
UID = 10001      # the image's user "sluice"
PREFIX = "sluice-imgtest-"   # every container this module starts; removed in finally


def podman(*args, timeout=120, check=True, env=None):
    r = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} -> {r.returncode}\n{r.stderr[-3000:]}")
    return r


def wait_for(cond, timeout=DEADLINE, interval=0.2, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, method=None, timeout=10):
    """(status, body bytes); (0, b"") when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def metrics(port):
    st, body = http(f"http://127.0.0.1:{port}/metrics")
    assert st == 200, f"/metrics on {port}: {st}"
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


# ---------------------------------------------------------------- podman and the images

def podman_ready():
    """None when podman runs containers here, else why not."""
    if not shutil.which("podman") or not shutil.which("runc"):
        return "podman/runc not installed"
    if os.geteuid() != 0:
        return "the image tests run podman as root"
    if podman("image", "exists", BASE, check=False).returncode != 0:
        why = ""
        try:
            with open(os.path.join(CACHE, "podman.status")) as f:
                why = f.read().strip()
        except OSError:
            pass
        return f"no base image {BASE}" + (f" (podman-setup: {why})" if why != "ok" else "")
    return None


def context_hash():
    """sha256 over the build context as .dockerignore cuts it, the Dockerfile and
    the build flags: the images are rebuilt only when this changes."""
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignore = [ln.strip().rstrip("/") for ln in f if ln.strip() and not ln.startswith("#")]

    def ignored(rel):
        # .dockerignore semantics: a pattern matches the path from the context root,
        # component by component ("*.md" is the root's only); "**/" any depth.
        parts = rel.split("/")
        for p in ignore:
            if p.startswith("**/"):
                if any(fnmatch.fnmatchcase(c, p[3:]) for c in parts):
                    return True
                continue
            pat = p.split("/")
            if len(pat) == len(parts) and all(map(fnmatch.fnmatchcase, parts, pat)):
                return True
        return False

    h = hashlib.sha256()
    for d, dirs, files in os.walk(ROOT):
        rel_d = os.path.relpath(d, ROOT)
        dirs[:] = sorted(x for x in dirs if not ignored(os.path.normpath(os.path.join(rel_d, x))))
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(rel_d, name))
            if ignored(rel):
                continue
            h.update(rel.encode() + b"\0")
            p = os.path.join(d, name)
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            else:
                with open(p, "rb") as f:
                    h.update(f.read())
    with open(DOCKERFILE, "rb") as f:
        h.update(f.read())
    h.update(" ".join(BUILD_FLAGS).encode())
    return h.hexdigest()


def image_id(ref):
    r = podman("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def build(target, tags, source):
    """Builds one target unless an image of this source tree exists. The stamp is
    a tag (sluice-X:src-HASH), not a label: when every layer is cached, podman
    hands back the earlier identical image with the earlier build's label."""
    repo = tags[0].rsplit(":", 1)[0]
    stamp = f"{repo}:src-{source[:16]}"
    if image_id(stamp) is None:
        t0 = time.monotonic()
        # Layers are cached: the second target reuses the first one's build stage.
        r = podman("build", *BUILD_FLAGS, "-f", DOCKERFILE, "--target", target, "-t", stamp,
                   ROOT, timeout=BUILD_TIMEOUT, check=False)
        assert r.returncode == 0, f"podman build --target {target} failed:\n" \
                                  f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        print(f"built {stamp} in {time.monotonic() - t0:.0f}s")
    for t in tags:
        podman("tag", stamp, t)
    # Older stamps go: their images become dangling, for `podman image prune`.
    names = podman("images", "--format", "{{.Repository}}:{{.Tag}}", repo).stdout.split()
    for old in names:
        if ":src-" in old and old != stamp:
            podman("untag", image_id(old), old, check=False)


@pytest.fixture(scope="module")
def images():
    why = podman_ready()
    if why:
        msg = f"container image tests need podman: {why}; run tests/deploy/setup"
        if os.environ.get("SLUICE_REQUIRE_PODMAN"):
            pytest.fail(msg)
        pytest.skip(msg)
    source = context_hash()
    for target, tags in IMAGES.items():
        build(target, tags, source)
    return {t: tags[0] for t, tags in IMAGES.items()}


@pytest.fixture
def containers():
    """Starts containers (podman run -d) on their own network stack (slirp4netns:
    the host's loopback is 10.0.2.2 inside, where OpenSearch and the published
    ports are); stops and removes every one at the end, printing its log first so
    a failure shows what the daemon said."""
    names = []

    def run(name, image, *args, opts=()):
        name = PREFIX + name + "-" + uuid.uuid4().hex[:6]
        names.append(name)
        podman("run", "-d", "--name", name, *NET, *ULIMITS, *opts, image, *args)
        return name

    yield run
    for n in names:
        logs = podman("logs", n, check=False)
        print(f"--- podman logs {n}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        podman("stop", "-t", "10", n, check=False, timeout=60)
        podman("rm", "-f", n, check=False, timeout=60)


def published(name, port):
    """The host port podman chose for a container port published as 127.0.0.1::PORT."""
    out = podman("port", name, f"{port}/tcp").stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


# ---------------------------------------------------------------- OpenSearch on the host

class OpenSearch:
    def __init__(self, url):
        self.url = url

    def req(self, method, path, body=None):
        st, raw = http(self.url + path, body, method, timeout=60)
        return st, json.loads(raw or b"null")

    def count(self, pattern):
        self.req("POST", f"/{pattern}/_refresh")
        st, body = self.req("GET", f"/{pattern}/_count")
        return body["count"] if st == 200 else 0

    def docs(self, pattern):
        self.req("POST", f"/{pattern}/_refresh")
        st, body = self.req("POST", f"/{pattern}/_search?size=10000", {"query": {"match_all": {}}})
        assert st == 200, body
        return [h["_source"] for h in body["hits"]["hits"]]


@pytest.fixture(scope="module")
def opensearch(images):
    for url in started.opensearch():
        yield OpenSearch(url)


# ---------------------------------------------------------------- the tests

def test_images_hold_what_the_daemons_need(images):
    """Every shared library resolves, the grok pattern sets are installed, the
    default user is the unprivileged one, and each binary checks its image's config."""
    for target, image in images.items():
        binary = f"/usr/bin/sluice-{target}"
        r = podman("run", "--rm", "--network=none", *ULIMITS, "--entrypoint", "ldd", image, binary)
        assert "not found" not in r.stdout, r.stdout
        r = podman("run", "--rm", "--network=none", *ULIMITS, "--entrypoint", "sh", image, "-c",
                   "id -u; id -g; ls /etc/sluice/patterns/legacy | wc -l; "
                   "ls /etc/sluice/patterns/ecs-v1 | wc -l")
        uid, gid, legacy, ecs = (int(x) for x in r.stdout.split())
        assert (uid, gid) == (UID, UID)
        want = len(os.listdir(os.path.join(ROOT, "config", "patterns", "legacy")))
        assert legacy == want and ecs == len(os.listdir(os.path.join(ROOT, "config", "patterns",
                                                                      "ecs-v1")))
        r = podman("run", "--rm", "--network=none", *ULIMITS, "--read-only", image,
                   "-t", "-c", f"/etc/sluice/{target}.yml", check=False)
        assert r.returncode == 0, r.stdout + r.stderr


PODS = [("web-7d9f8b6c5-x2x4z", "shop", "nginx"), ("api-5c8b7d-qq7ld", "prod", "server"),
        ("postgres-0", "data", "postgres")]
BEFORE, AFTER = 300, 200   # lines per file before the shipper starts, and while it runs


def cri_line(seq, pod):
    """A CRI line holding an access log line; the runtime's time is fixed (never today)."""
    ts = f"2025-03-04T05:{(seq // 60) % 60:02d}:{seq % 60:02d}.{seq % 1000:03d}000000Z"
    msg = (f'10.1.{seq // 250}.{seq % 250} - - [04/Mar/2025:05:06:07 +0000] '
           f'"GET /{pod}/{seq} HTTP/1.1" 200 {seq}')
    return f"{ts} {'stderr' if seq % 7 == 0 else 'stdout'} F {msg}\n"


def test_stack_in_containers_indexes_every_line_with_pod_metadata(images, opensearch,
                                                                    containers, tmp_path):
    index = f"sluice-imgtest-{uuid.uuid4().hex[:8]}"
    os_port = int(opensearch.url.rsplit(":", 1)[1])

    conf = tmp_path / "conf"
    conf.mkdir()
    # The containers' own ports are the images' (5044, 9600, 5066; metrics.listen from
    # the image's SLUICE_METRICS_LISTEN); the host reaches them through published ports.
    (conf / "aggregator.yml").write_text(f"""
input:
  listen: 0.0.0.0:5044
pipeline:
  filters:
    # patterns_dir: the image's copy of config/patterns/legacy loads and is used
    - grok:
        field: message
        patterns: ['%{{HTTPD_COMMONLOG}}']
        patterns_dir: [/etc/sluice/patterns/legacy]
        ecs_compatibility: disabled
outputs:
  - elasticsearch:
      hosts: ["http://{HOST}:{os_port}"]
      index: "{index}-%{{+yyyy.MM.dd}}"
      manage_template: false
metrics:
  listen: "${{SLUICE_METRICS_LISTEN}}"
shutdown_timeout: 5s
""")
    logs = tmp_path / "containers"
    logs.mkdir()
    registry = tmp_path / "registry"
    registry.mkdir()
    os.chown(registry, UID, UID)
    for d in (tmp_path, conf, logs):
        os.chmod(d, 0o755)

    cids = {pod: hashlib.sha256(pod.encode()).hexdigest() for pod, _, _ in PODS}
    files = {}
    for pod, ns, cont in PODS:
        p = logs / f"{pod}_{ns}_{cont}-{cids[pod]}.log"
        with open(p, "w") as f:
            f.writelines(cri_line(i, pod) for i in range(BEFORE))
        os.chmod(p, 0o644)
        files[pod] = p

    # As the k8s manifests run them: no capabilities, no privilege gain, read-only root.
    locked = ["--read-only", "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
    os.chmod(conf / "aggregator.yml", 0o644)
    agg = containers("aggregator", images["aggregator"], "-c", "/etc/sluice/test/aggregator.yml",
                     "--log-format", "json",
                     opts=locked + ["-v", f"{conf}:/etc/sluice/test:ro",
                                    "-p", "127.0.0.1::5044", "-p", "127.0.0.1::9600"])
    lj, agg_metrics = published(agg, 5044), published(agg, 9600)
    (conf / "shipper.yml").write_text(f"""
name: node-1
inputs:
  - id: containers
    type: container
    paths: ["/var/log/containers/*.log"]
    start_position: beginning
output:
  hosts: ["{HOST}:{lj}"]
  flush_interval: 100ms
  backoff: {{init: 100ms, max: 1s}}
registry:
  path: /var/lib/sluice/shipper
  flush: 100ms
metrics:
  listen: "${{SLUICE_METRICS_LISTEN}}"
shutdown_timeout: 5s
""")
    os.chmod(conf / "shipper.yml", 0o644)
    wait_for(lambda: http(f"http://127.0.0.1:{agg_metrics}/healthz")[0] == 200, timeout=60,
             what="the aggregator container's /healthz")
    ship = containers("shipper", images["shipper"], "-c", "/etc/sluice/test/shipper.yml",
                      "--log-format", "json",
                      opts=locked + ["-v", f"{conf}:/etc/sluice/test:ro",
                                     "-v", f"{logs}:/var/log/containers:ro",
                                     "-v", f"{registry}:/var/lib/sluice/shipper",
                                     "-p", "127.0.0.1::5066"])
    ship_metrics = published(ship, 5066)
    wait_for(lambda: http(f"http://127.0.0.1:{ship_metrics}/healthz")[0] == 200, timeout=60,
             what="the shipper container's /healthz")
    # Lines written while the shipper runs: it tails, not only reads what was there.
    for pod, _, _ in PODS:
        with open(files[pod], "a") as f:
            f.writelines(cri_line(i, pod) for i in range(BEFORE, BEFORE + AFTER))
    total = len(PODS) * (BEFORE + AFTER)
    wait_for(lambda: metrics(ship_metrics).get("sluice_shipper_events_acked_total") == total,
             timeout=120, interval=0.5, what=f"{total} events ACKed to the shipper")

    pattern = index + "-*"
    assert opensearch.count(pattern) == total
    docs = opensearch.docs(pattern)
    seen = set()
    by_pod = {pod: (ns, cont) for pod, ns, cont in PODS}
    for d in docs:
        pod = d["kubernetes"]["pod"]["name"]
        ns, cont = by_pod[pod]
        assert d["kubernetes"] == {"pod": {"name": pod}, "namespace": ns,
                                   "container": {"name": cont}}
        assert d["container"] == {"id": cids[pod], "runtime": "cri"}
        seq = int(d["request"].rsplit("/", 1)[1])
        assert d["message"] == cri_line(seq, pod).split(" F ", 1)[1].rstrip("\n")
        assert d["stream"] == ("stderr" if seq % 7 == 0 else "stdout")
        assert d["clientip"] == f"10.1.{seq // 250}.{seq % 250}" and d["bytes"] == str(seq)
        assert d["log"]["file"]["path"] == f"/var/log/containers/{files[pod].name}"
        seen.add((pod, seq))
    assert len(docs) == total
    assert seen == {(pod, i) for pod, _, _ in PODS for i in range(BEFORE + AFTER)}

    am, sm = metrics(agg_metrics), metrics(ship_metrics)
    assert am['sluice_aggregator_output_events_total{output="elasticsearch",result="ok"}'] == total
    assert am["sluice_aggregator_events_acked_total"] == total
    assert sm["sluice_shipper_lines_read_total"] == total
    assert sm[f'sluice_shipper_connection_up{{host="{HOST}:{lj}"}}'] == 1
    for port in (agg_metrics, ship_metrics):
        assert http(f"http://127.0.0.1:{port}/healthz")[0] == 200

    for name in (agg, ship):
        # The Dockerfile's HEALTHCHECK (kept: the images are built in docker format).
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        # Unprivileged, read-only root: the daemon's uid, and the root fs refuses writes.
        r = podman("exec", name, "sh", "-c", "awk '/^Uid:/{print $2}' /proc/1/status")
        assert r.stdout.strip() == str(UID)
        r = podman("exec", name, "touch", "/etc/sluice/x", check=False)
        assert r.returncode != 0 and "Read-only file system" in r.stderr
    # The registry (the one writable mount) holds every file's end, written as uid 10001.
    podman("stop", "-t", "10", ship, timeout=60)
    reg = registry / "registry.json"
    assert reg.stat().st_uid == UID
    offsets = {e["path"]: e["offset"] for e in json.loads(reg.read_text())["entries"]}
    assert offsets == {f"/var/log/containers/{p.name}": p.stat().st_size for p in files.values()}


# ---------------------------------------------------------------- podman play kube

K8S = os.path.join(ROOT, "deploy", "k8s")


def load_docs(name):
    with open(os.path.join(K8S, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def dump_docs(path, docs):
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def set_env(container, name, value):
    for e in container["env"]:
        if e["name"] == name:
            e.pop("valueFrom", None)
            e["value"] = value
            return
    raise AssertionError(f"no env {name} in {container['name']}")


def publish(container, port_name):
    """A free host port, on the loopback only, for a named containerPort."""
    p = next(p for p in container["ports"] if p["name"] == port_name)
    p["hostPort"], p["hostIP"] = free_port(), "127.0.0.1"
    return p["hostPort"]


def test_k8s_manifests_run_with_podman_play_kube(images, opensearch, tmp_path):
    """deploy/k8s as podman play kube runs it, changed only where a cluster differs
    from this machine: addresses (env), one replica, host ports, the DaemonSet's pod
    template as a Pod (podman 4.3 has no DaemonSet), its hostPath volumes pointed at
    test directories, and no Kafka output (no broker a pod can reach here). The rest -
    ConfigMaps, args, probes' ports, securityContexts (uid 10001; uid 0 with only
    DAC_READ_SEARCH), read-only roots, volumes - is the manifests' own."""
    node = f"imgtestnode{uuid.uuid4().hex[:8]}"
    os_port = int(opensearch.url.rsplit(":", 1)[1])

    agg_docs = load_docs("aggregator.yaml")
    cm = next(d for d in agg_docs if d["kind"] == "ConfigMap")
    conf = yaml.safe_load(cm["data"]["aggregator.yml"])
    conf["outputs"] = [o for o in conf["outputs"] if "kafka" not in o]
    cm["data"]["aggregator.yml"] = yaml.safe_dump(conf, sort_keys=False)
    dep = next(d for d in agg_docs if d["kind"] == "Deployment")
    dep["spec"]["replicas"] = 1
    agg_c = dep["spec"]["template"]["spec"]["containers"][0]
    set_env(agg_c, "ES_URL", f"http://{HOST}:{os_port}")
    lj, agg_metrics = publish(agg_c, "lumberjack"), publish(agg_c, "metrics")
    agg_file = dump_docs(tmp_path / "aggregator.yaml", agg_docs)

    varlog = tmp_path / "varlog"
    (varlog / "containers").mkdir(parents=True)
    (varlog / "app").mkdir()
    registry = tmp_path / "registry"
    registry.mkdir()
    dockerlogs = tmp_path / "dockerlogs"
    dockerlogs.mkdir()
    ds_docs = load_docs("shipper-daemonset.yaml")
    ds = next(d for d in ds_docs if d["kind"] == "DaemonSet")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "sluice-shipper-" + node, "namespace": "sluice",
                        "labels": ds["spec"]["template"]["metadata"]["labels"]},
           "spec": ds["spec"]["template"]["spec"]}
    ship_c = pod["spec"]["containers"][0]
    set_env(ship_c, "NODE_NAME", node)
    set_env(ship_c, "SLUICE_AGGREGATOR", f"{HOST}:{lj}")
    ship_metrics = publish(ship_c, "metrics")
    hostpaths = {"varlog": str(varlog), "registry": str(registry), "dockerlogs": str(dockerlogs)}
    for v in pod["spec"]["volumes"]:
        if "hostPath" in v:
            v["hostPath"]["path"] = hostpaths[v["name"]]
    ship_file = dump_docs(tmp_path / "shipper.yaml",
                          [d for d in ds_docs if d["kind"] == "ConfigMap"] + [pod])

    # Log files as a runtime writes them: root-only (0600, another owner), so reading
    # them proves the DaemonSet's DAC_READ_SEARCH, not file modes, grants access.
    cids = {p: hashlib.sha256((node + p).encode()).hexdigest() for p, _, _ in PODS}
    files = {}
    for p, ns, cont in PODS:
        f = varlog / "containers" / f"{p}_{ns}_{cont}-{cids[p]}.log"
        f.write_text("".join(cri_line(i, p) for i in range(50)))   # before: start_position end
        os.chown(f, 12345, 12345)
        os.chmod(f, 0o600)
        files[p] = f

    # play kube has no --ulimit: podman's default ulimits, which the VM refuses, come
    # from containers.conf, so this run gets one of its own.
    cc = tmp_path / "containers.conf"
    cc.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(cc))
    kube = ["play", "kube", "--replace", "--network", NET[1]]
    try:
        podman(*kube, agg_file, timeout=180, env=env)
        wait_for(lambda: http(f"http://127.0.0.1:{agg_metrics}/readyz")[0] == 200, timeout=60,
                 what="the aggregator pod's /readyz (its readinessProbe)")
        assert http(f"http://127.0.0.1:{agg_metrics}/metrics")[0] == 200   # its livenessProbe
        podman(*kube, ship_file, timeout=180, env=env)
        wait_for(lambda: http(f"http://127.0.0.1:{ship_metrics}/healthz")[0] == 200, timeout=60,
                 what="the shipper pod's /healthz (its readinessProbe)")
        wait_for(lambda: metrics(ship_metrics).get("sluice_shipper_files_open") == len(PODS),
                 what="the shipper pod opening every container log")
        for p in files:
            with open(files[p], "a") as f:
                f.writelines(cri_line(i, p) for i in range(50, 50 + BEFORE))
        total = len(PODS) * BEFORE
        wait_for(lambda: metrics(ship_metrics).get("sluice_shipper_events_acked_total") == total,
                 timeout=120, interval=0.5, what=f"{total} events ACKed to the shipper pod")

        q = {"query": {"match": {"host.name": node}}}
        opensearch.req("POST", "/logs-kubernetes-*/_refresh")
        st, body = opensearch.req("POST", "/logs-kubernetes-*/_search?size=10000", q)
        assert st == 200, body
        docs = [h["_source"] for h in body["hits"]["hits"]]
        assert len(docs) == total
        got = set()
        for d in docs:
            p = d["kubernetes"]["pod"]["name"]
            assert d["fields"] == {"service": "kubernetes", "node": node}
            assert d["container"]["id"] == cids[p]
            got.add((p, d["kubernetes"]["namespace"], d["kubernetes"]["container"]["name"],
                     int(d["message"].split('"GET /', 1)[1].split()[0].rsplit("/", 1)[1])))
        assert got == {(p, ns, c, i) for p, ns, c in PODS for i in range(50, 50 + BEFORE)}

        def status(ctr, field):
            r = podman("exec", ctr, "awk", f"/^{field}:/{{print $2}}", "/proc/1/status")
            return r.stdout.strip()
        agg_ctr = "sluice-aggregator-pod-0-aggregator"
        ship_ctr = f"sluice-shipper-{node}-shipper"
        assert status(agg_ctr, "Uid") == str(UID)
        assert status(ship_ctr, "Uid") == "0"
        assert int(status(ship_ctr, "CapEff"), 16) == 1 << 2     # CAP_DAC_READ_SEARCH only
        for ctr in (agg_ctr, ship_ctr):
            r = podman("exec", ctr, "touch", "/etc/sluice/x", check=False)
            assert r.returncode != 0 and "Read-only file system" in r.stderr
    finally:
        for f in (ship_file, agg_file):
            podman("play", "kube", "--down", f, check=False, timeout=120)

"""Validation of the deployment assets (issue #6): docker-compose.yml, the
Dockerfile, the Kubernetes manifests, the systemd units, the Prometheus /
Grafana / Kibana / Elasticsearch files, the config overlays and the helper
scripts. Nothing here needs a Docker engine or a cluster: each asset is checked
with the real validator that runs on this machine (docker compose config,
kubeconform with offline schemas, promtool, systemd-analyze, the sluice
binaries' own -t) plus structural checks of what the validators cannot know
(ports against docs/configuration.md, metric names against docs/operations.md, start order). Tools come from
tests/deploy/setup, cached in .cache/deploy/.

Every check can fail; where a validator is a negative control (a broken copy
must be rejected), that is said in the test.
"""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CACHE = os.environ.get("SLUICE_DEPLOY_CACHE", os.path.join(ROOT, ".cache", "deploy"))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build"))
SHIPPER = os.path.join(BUILD, "sluice-shipper")
AGGREGATOR = os.path.join(BUILD, "sluice-aggregator")
PROMTOOL = os.path.join(ROOT, "tests", "deploy", "promtool")
KUBECONFORM = os.path.join(CACHE, "bin", "kubeconform")
COMPOSE = os.path.join(CACHE, "bin", "docker-compose")
PROMTOOL_UPSTREAM = os.path.join(CACHE, "bin", "promtool-upstream")
K8S_SCHEMAS = os.path.join(CACHE, "k8s-schemas")
K8S_VERSION = "1.31.0"
DEADLINE = float(os.environ.get("SLUICE_TEST_DEADLINE", "30"))

# docs/operations.md (Metrics): the only metric names dashboards and alerts may use.
HISTOGRAMS = {"sluice_shipper_batch_ack_seconds", "sluice_aggregator_output_request_seconds"}
DOCUMENTED_METRICS = {
    "sluice_shipper_lines_read_total", "sluice_shipper_bytes_read_total",
    "sluice_shipper_events_sent_total", "sluice_shipper_events_acked_total",
    "sluice_shipper_lines_dropped_total", "sluice_shipper_files_open",
    "sluice_shipper_queue_events", "sluice_shipper_connection_errors_total",
    "sluice_shipper_connection_up", "sluice_shipper_batch_ack_seconds",
    "sluice_shipper_wire_bytes_total",
    "sluice_aggregator_connections", "sluice_aggregator_events_received_total",
    "sluice_aggregator_events_acked_total", "sluice_aggregator_filter_events_total",
    "sluice_aggregator_output_events_total", "sluice_aggregator_output_request_seconds",
    "sluice_aggregator_queue_events",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
    "process_start_time_seconds",
}
ALLOWED_SERIES = (DOCUMENTED_METRICS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
                  | {"up"})  # `up` is Prometheus's own scrape-health series

# The aggregator plugins the docs name; a config using one not compiled in yet is
# reported by -t as "unknown filter/output 'x'" (see test_aggregator_overlays).
DOCUMENTED_FILTERS = {"grok", "date", "mutate", "json", "kv", "drop", "dissect", "useragent", "geoip"}
DOCUMENTED_OUTPUTS = {"elasticsearch", "kafka", "file", "stdout"}


def path(*parts):
    return os.path.join(ROOT, *parts)


def load_yaml(*parts):
    with open(path(*parts)) as f:
        return yaml.safe_load(f)


def load_yaml_all(p):
    with open(p) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def need(tool, what):
    if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
        pytest.fail(f"{what} is missing ({tool}): run tests/deploy/setup")


def need_binaries():
    for b in (SHIPPER, AGGREGATOR):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is not built: run make (or set SLUICE_BUILD)")


# ---------------------------------------------------------------- PromQL helpers

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def promql_metric_names(expr):
    """The series names an expression selects (functions, keywords, label matchers,
    ranges and grouping clauses removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        tok = m.group(0)
        if e[m.end():].lstrip().startswith("(") or tok.lower() in PROMQL_WORDS:
            continue
        names.add(tok)
    return names


def test_promql_metric_names_helper():
    # the helper the metric-name checks rely on
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{job=~"x|y"}[5m]))) > 10'
    ) == {"a_bucket"}
    assert promql_metric_names("sum(b) / ignoring(x) group_left c and on(i) up == 0") == {"b", "c", "up"}
    assert promql_metric_names("time() - process_start_time_seconds{job=~\"$j\"}") == {
        "process_start_time_seconds"}


def promtool_check_exprs(exprs, tmp_path):
    """Runs promtool's PromQL parser over expressions by wrapping them in recording rules."""
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    p = tmp_path / "exprs.yml"
    p.write_text(yaml.safe_dump(rules))
    return run([PROMTOOL, "check", "rules", str(p)])


# ============================================================ docker-compose.yml

COMPOSE_SERVICES = {"elasticsearch", "es-setup", "kibana", "kibana-setup", "kafka", "aggregator",
                    "demo-app", "shipper", "prometheus", "grafana"}
ONE_SHOT = {"es-setup", "kibana-setup"}
# Images vouched for: tags that exist upstream. Changing one is a deliberate act.
KNOWN_IMAGES = {
    "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
    "docker.elastic.co/kibana/kibana:8.15.3",
    "apache/kafka:3.8.0",
    "busybox:1.36.1",
    "prom/prometheus:v2.54.1",
    "grafana/grafana:11.2.0",
    "sluice-aggregator:dev",
    "sluice-shipper:dev",
}
# Environment variables each image documents (Elasticsearch and Kibana: settings
# as env; apache/kafka: KAFKA_* = server.properties keys plus CLUSTER_ID; Grafana:
# GF_<SECTION>_<KEY>). sluice's own: the ${VAR} of its mounted config.
KNOWN_ENV = {
    "docker.elastic.co/elasticsearch/elasticsearch": {
        "discovery.type", "xpack.security.enabled", "cluster.name", "ES_JAVA_OPTS"},
    "docker.elastic.co/kibana/kibana": {
        "ELASTICSEARCH_HOSTS", "SERVER_PUBLICBASEURL", "TELEMETRY_OPTIN"},
    "apache/kafka": {
        "CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "KAFKA_NUM_PARTITIONS",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE"},
    "grafana/grafana": {
        "GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD", "GF_AUTH_ANONYMOUS_ENABLED",
        "GF_AUTH_ANONYMOUS_ORG_ROLE", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
        "GF_ANALYTICS_REPORTING_ENABLED"},
    "prom/prometheus": set(),
}


@pytest.fixture(scope="module")
def compose():
    return load_yaml("docker-compose.yml")


def env_of(svc):
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_services_and_images(compose):
    services = compose["services"]
    assert set(services) == COMPOSE_SERVICES
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), \
            f"{name}: image {image} must carry a pinned tag"
        assert image in KNOWN_IMAGES, f"{name}: {image} is not one of the images this test vouches for"
    es = services["elasticsearch"]["image"].rsplit(":", 1)[1]
    kb = services["kibana"]["image"].rsplit(":", 1)[1]
    assert es == kb, "Kibana and Elasticsearch must run the same version"
    for name in ("aggregator", "shipper"):
        b = services[name]["build"]
        assert os.path.isfile(path(b["context"], b["dockerfile"])), f"{name}: no {b['dockerfile']}"
        with open(path(b["context"], b["dockerfile"])) as f:
            assert re.search(rf"^FROM\s+\S+\s+AS\s+{b['target']}\s*$", f.read(), re.M | re.I), \
                f"{name}: the Dockerfile has no stage {b['target']}"


def test_compose_elasticsearch_single_node_without_security(compose):
    env = env_of(compose["services"]["elasticsearch"])
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    kafka = env_of(compose["services"]["kafka"])
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "broker" in kafka["KAFKA_PROCESS_ROLES"], \
        "Kafka must run in KRaft combined mode (no ZooKeeper)"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["CLUSTER_ID"]), "CLUSTER_ID: 16 bytes, base64url"


def test_compose_healthchecks(compose):
    for name, svc in compose["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} is a one-shot: restart must be \"no\""
            assert "healthcheck" not in svc
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test"), f"{name}: no healthcheck"
        test = hc["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck.test form"
        for key in ("interval", "timeout", "retries"):
            assert key in hc, f"{name}: healthcheck.{key}"


def test_compose_start_order(compose):
    services = compose["services"]
    graph = {}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must use the long form with conditions"
        graph[name] = set(deps)
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            cond = spec.get("condition")
            if dep in ONE_SHOT:
                assert cond == "service_completed_successfully", f"{name} -> {dep}: {cond}"
            else:
                assert cond == "service_healthy", f"{name} -> {dep}: {cond}"
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which has none"
    # the order the README promises
    want = {
        "es-setup": {"elasticsearch"},
        "kibana": {"elasticsearch"},
        "kibana-setup": {"kibana"},
        "aggregator": {"elasticsearch", "es-setup", "kafka"},
        "shipper": {"aggregator", "demo-app"},
        "grafana": {"prometheus"},
    }
    for name, deps in want.items():
        assert graph[name] == deps, f"{name} depends on {graph[name]}, expected {deps}"
    # no cycle
    seen, done = set(), set()

    def visit(n):
        assert n not in seen or n in done, f"depends_on cycle through {n}"
        if n in done:
            return
        seen.add(n)
        for d in graph[n]:
            visit(d)
        done.add(n)
    for n in graph:
        visit(n)


def published(svc):
    out = {}
    for p in svc.get("ports", []):
        host, _, container = str(p).rpartition(":")
        out[int(container.split("/")[0])] = int(host.rsplit(":", 1)[-1])
    return out


def test_compose_ports_match_spec(compose):
    s = compose["services"]
    agg, shp = s["aggregator"], s["shipper"]
    assert published(agg) == {5044: 5044, 9600: 9600}
    assert published(shp) == {5066: 5066}
    assert env_of(agg)["SLUICE_METRICS_LISTEN"] == "0.0.0.0:9600"
    assert env_of(agg)["SLUICE_LISTEN"] == "0.0.0.0:5044"
    assert env_of(shp)["SLUICE_METRICS_LISTEN"] == "0.0.0.0:5066"
    assert env_of(shp)["SLUICE_AGGREGATOR"] == "aggregator:5044"
    assert "127.0.0.1:9600/healthz" in " ".join(agg["healthcheck"]["test"])
    assert "127.0.0.1:5066/healthz" in " ".join(shp["healthcheck"]["test"])
    assert published(s["elasticsearch"]) == {9200: 9200}
    assert published(s["kibana"]) == {5601: 5601}
    assert published(s["prometheus"]) == {9090: 9090}
    assert published(s["grafana"]) == {3000: 3000}
    # Prometheus scrapes the ports the daemons serve
    prom = load_yaml("deploy", "prometheus", "prometheus.yml")
    targets = {sc["job_name"]: [t for c in sc["static_configs"] for t in c["targets"]]
               for sc in prom["scrape_configs"]}
    assert targets["sluice-shipper"] == ["shipper:5066"]
    assert targets["sluice-aggregator"] == ["aggregator:9600"]
    # the ES URL handed to the aggregator and the setup jobs is the compose service
    assert env_of(agg)["ES_URL"] == "http://elasticsearch:9200" == env_of(s["es-setup"])["ES_URL"]
    assert env_of(agg)["KAFKA_BROKERS"] == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in env_of(s["kafka"])["KAFKA_ADVERTISED_LISTENERS"]


def test_compose_env_vars_are_real(compose):
    """Every env var is one its image documents, or a ${VAR} that sluice's mounted
    config actually reads: no variable is set for show."""
    for name, svc in compose["services"].items():
        env = env_of(svc)
        repo = svc["image"].rsplit(":", 1)[0]
        if repo.startswith("sluice-"):
            configs = [v.split(":")[0] for v in svc["volumes"] if str(v).endswith(".yml:ro")]
            assert configs, f"{name}: no config mounted"
            text = "".join(open(path(c)).read() for c in configs)
            for var in env:
                assert re.search(r"\$\{" + re.escape(var) + r"(:-[^}]*)?\}", text), \
                    f"{name}: {var} is set but {configs} never reads it"
        elif repo == "busybox":
            script = open(path("deploy", "compose", "demo-app.sh")).read()
            for var in env:
                assert "${" + var in script, f"{name}: {var} unused by demo-app.sh"
        elif name in ONE_SHOT:
            script_dir = [v.split(":")[0] for v in svc["volumes"]][0]
            text = "".join(open(os.path.join(path(script_dir), f)).read()
                           for f in os.listdir(path(script_dir)) if f.endswith(".sh"))
            for var in env:
                assert "${" + var in text, f"{name}: {var} unused by its script"
        else:
            unknown = set(env) - KNOWN_ENV[repo]
            assert not unknown, f"{name}: {unknown} not documented for {repo}"


def test_compose_bind_mounts_exist(compose):
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = str(v).split(":")[0]
            if src.startswith("./"):
                assert os.path.exists(path(src)), f"{name}: {src} does not exist"
            else:
                assert src in compose["volumes"], f"{name}: volume {src} not declared"
        if name in ONE_SHOT:
            script = svc["entrypoint"][-1]
            mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in svc["volumes"]}
            host = next(h for c, h in mounts.items() if script.startswith(c + "/"))
            rel = script[len(next(c for c in mounts if script.startswith(c + "/"))) + 1:]
            assert os.path.isfile(path(host, rel)), f"{name}: {script} is not in {host}"


def test_compose_grafana_provisioning_paths(compose):
    g = compose["services"]["grafana"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in g["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    prov = load_yaml("deploy", "grafana", "provisioning", "dashboards", "sluice.yml")
    dash_dir = prov["providers"][0]["options"]["path"]
    assert mounts[dash_dir] == "./deploy/grafana/dashboards"
    home = env_of(g)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/")
    assert os.path.isfile(path("deploy", "grafana", "dashboards", os.path.basename(home)))
    ds = load_yaml("deploy", "grafana", "provisioning", "datasources", "prometheus.yml")
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"


def compose_tool():
    if os.access(COMPOSE, os.X_OK):
        return [COMPOSE]
    if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None


def test_compose_config_validates(tmp_path):
    tool = compose_tool()
    if not tool:
        pytest.skip("no docker compose here: tests/deploy/setup builds it through the Go module "
                    "proxy (optional step, it failed or was skipped); the structural checks above "
                    "still ran")
    r = run(tool + ["-f", path("docker-compose.yml"), "config", "-q"], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    # negative control: compose must reject a dependency on a missing service
    broken = open(path("docker-compose.yml")).read().replace(
        "      demo-app:\n        condition: service_healthy",
        "      no-such-app:\n        condition: service_healthy")
    assert "no-such-app" in broken
    (tmp_path / "docker-compose.yml").write_text(broken)
    r = run(tool + ["-f", str(tmp_path / "docker-compose.yml"), "--project-directory", ROOT,
                    "config", "-q"], cwd=ROOT)
    assert r.returncode != 0 and "no-such-app" in (r.stderr + r.stdout)


def test_demo_app_writes_parseable_lines(tmp_path):
    env = dict(os.environ, DEMO_LOG_DIR=str(tmp_path), DEMO_RATE="3")
    p = subprocess.Popen(["sh", path("deploy", "compose", "demo-app.sh")], env=env,
                         start_new_session=True)
    try:
        log = tmp_path / "access.log"
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and (not log.exists() or log.read_text().count("\n") < 3):
            time.sleep(0.1)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait()
    lines = log.read_text().splitlines()
    assert len(lines) >= 3
    combined = re.compile(r'^\S+ \S+ \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] '
                          r'"GET \S+ HTTP/1\.1" \d{3} \d+ "[^"]*" "[^"]*"$')
    for line in lines:
        assert combined.match(line), line


# ================================================================== Dockerfile

def dockerfile_stages():
    text = open(path("deploy", "docker", "Dockerfile")).read()
    text = re.sub(r"\\\n", " ", text)
    stages, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            cur = m.group(2) or f"stage{len(stages)}"
            stages[cur] = {"from": m.group(1), "lines": []}
        elif cur:
            stages[cur]["lines"].append((instr, rest.strip()))
    return stages


def stage_chain(stages, name):
    out = [name]
    while stages[out[-1]]["from"] in stages:
        out.append(stages[out[-1]]["from"])
    return out


def test_dockerfile_structure():
    st = dockerfile_stages()
    assert st["build"]["from"] == "debian:${DEBIAN_RELEASE}"
    assert st["runtime"]["from"] == "debian:${DEBIAN_RELEASE}-slim"
    assert re.search(r"^ARG DEBIAN_RELEASE=bookworm$",
                     open(path("deploy", "docker", "Dockerfile")).read(), re.M)
    build_runs = " ".join(r for i, r in st["build"]["lines"] if i == "RUN")
    assert "make" in build_runs and "all" in build_runs
    ports = {"shipper": {"5066"}, "aggregator": {"5044", "9600"}}
    for target, binary in (("shipper", "sluice-shipper"), ("aggregator", "sluice-aggregator")):
        chain = stage_chain(st, target)
        assert chain == [target, "runtime"], chain
        lines = st[target]["lines"]
        users = [r for i, r in lines if i == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{target}: runs as root"
        entry = [r for i, r in lines if i == "ENTRYPOINT"]
        assert entry and json.loads(entry[-1]) == [f"/usr/bin/{binary}"], \
            f"{target}: ENTRYPOINT must be the exec form of the daemon (PID 1 gets SIGTERM)"
        assert any(i == "COPY" and "--from=build" in r and binary in r for i, r in lines)
        exposed = {p for i, r in lines if i == "EXPOSE" for p in r.split()}
        assert exposed == ports[target]
        hc = [r for i, r in lines if i == "HEALTHCHECK"]
        metrics_port = "5066" if target == "shipper" else "9600"
        assert hc and f"127.0.0.1:{metrics_port}/healthz" in hc[0]
        env = " ".join(r for i, r in lines if i == "ENV")
        assert f"SLUICE_METRICS_LISTEN=0.0.0.0:{metrics_port}" in env
    runtime_runs = " ".join(r for i, r in st["runtime"]["lines"] if i == "RUN")
    assert "useradd" in runtime_runs and "--uid 10001" in runtime_runs


def runtime_packages():
    st = dockerfile_stages()
    run_line = next(r for i, r in st["runtime"]["lines"] if i == "RUN" and "apt-get install" in r)
    install = run_line.split("apt-get install", 1)[1].split("&&")[0]
    return {w for w in install.split() if not w.startswith("-")}


def test_dockerfile_runtime_libraries():
    pkgs = runtime_packages()
    spec = {"libyaml-0-2", "libcurl4", "librdkafka1", "libzstd1", "libonig5", "zlib1g", "libssl3",
            "libmaxminddb0"}
    assert spec <= pkgs, f"missing runtime libraries: {spec - pkgs}"
    assert not {p for p in pkgs if p.endswith("-dev")}, "no -dev package in the runtime image"
    # every library the built daemons really link is in the list (or in the slim base)
    need_binaries()
    base = {"libc6", "libgcc-s1"}
    needed = {}
    for b in (SHIPPER, AGGREGATOR):
        r = run(["objdump", "-p", b])
        assert r.returncode == 0, r.stderr
        for soname in re.findall(r"NEEDED\s+(\S+)", r.stdout):
            if "asan" not in soname and "ubsan" not in soname:
                needed.setdefault(soname, os.path.basename(b))
    assert "libyaml-0.so.2" in needed
    # which listed package ships each soname: read their dpkg file lists (they are
    # installed here, as dependencies of the -dev packages the build uses)
    owners = {}
    for pkg in pkgs | base:
        lists = [f for f in (f"/var/lib/dpkg/info/{pkg}:amd64.list", f"/var/lib/dpkg/info/{pkg}.list")
                 if os.path.exists(f)]
        for f in lists:
            for line in open(f):
                name = os.path.basename(line.strip())
                if name in needed:
                    owners.setdefault(name, set()).add(pkg)
    for soname, binary in needed.items():
        assert soname in owners, \
            f"{binary} links {soname}, which no package of the runtime stage ships"


def test_dockerignore():
    rules = [l.strip() for l in open(path(".dockerignore")) if l.strip() and not l.startswith("#")]
    for must in (".git", "build", ".cache"):
        assert must in rules, f".dockerignore must exclude {must}"
    # nothing the build stage needs is excluded (top-level names only: the file uses no globs on them)
    needed = ["Makefile", "lib", "shipper", "aggregator", "plugins", "config", "scripts", "deploy/config",
              "deploy/docker"]
    for n in needed:
        assert n not in rules, f".dockerignore excludes {n}, which the image build needs"
    for r in rules:
        assert not any(n.startswith(r + "/") for n in needed), f"{r} hides part of {needed}"


# ======================================================== Kubernetes manifests

K8S_DIR = os.path.join(DEPLOY, "k8s")


def k8s_docs():
    docs = []
    for f in sorted(os.listdir(K8S_DIR)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            docs += [(f, d) for d in load_yaml_all(os.path.join(K8S_DIR, f))]
    return docs


def kubeconform(paths):
    need(KUBECONFORM, "kubeconform")
    if not os.path.isfile(os.path.join(K8S_SCHEMAS, f"v{K8S_VERSION}-local-strict", "_definitions.json")):
        pytest.fail(f"offline Kubernetes schemas missing in {K8S_SCHEMAS}: run tests/deploy/setup")
    loc = K8S_SCHEMAS + "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/" \
                        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    return run([KUBECONFORM, "-strict", "-summary", "-output", "json",
                "-kubernetes-version", K8S_VERSION, "-schema-location", loc,
                "-skip", "Kustomization"] + paths)


def test_k8s_kubeconform_offline():
    r = kubeconform([K8S_DIR])
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout)["summary"]
    assert summary["invalid"] == 0 and summary["errors"] == 0
    assert summary["valid"] == len(k8s_docs()) and summary["valid"] >= 9, summary
    assert summary["skipped"] == 1, "only the Kustomization may be skipped"


def test_k8s_kubeconform_rejects_broken_manifest(tmp_path):
    # negative control: the offline schemas are really loaded and strict
    docs = load_yaml_all(os.path.join(K8S_DIR, "aggregator.yaml"))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"   # typo
    dep["spec"]["replicas"] = "two"                                                 # wrong type
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(dep))
    r = kubeconform([str(tmp_path / "broken.yaml")])
    assert r.returncode != 0
    out = r.stdout
    assert "imagePullPolcy" in out and "replicas" in out, out


def container_by_name(pod, name):
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name}")


def test_k8s_aggregator():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_docs()}
    dep = docs[("Deployment", "sluice-aggregator")]
    pod = dep["spec"]["template"]["spec"]
    c = container_by_name(pod, "aggregator")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"lumberjack": 5044, "metrics": 9600}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/metrics")):
        g = c[probe]["httpGet"]
        assert g["path"] == path and ports.get(g["port"], g["port"]) == 9600, probe
    assert c["resources"]["requests"]["cpu"], "the CPU HPA needs a CPU request"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SLUICE_METRICS_LISTEN"] == "0.0.0.0:9600"
    assert pod["terminationGracePeriodSeconds"] > 10, "longer than shutdown_timeout"
    svc = docs[("Service", "sluice-aggregator")]
    assert {p["port"] for p in svc["spec"]["ports"]} == {5044, 9600}
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    hpa = docs[("HorizontalPodAutoscaler", "sluice-aggregator")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "sluice-aggregator"}
    m = hpa["spec"]["metrics"][0]
    assert m["type"] == "Resource" and m["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2
    check_config_mount(docs, pod, c)


def check_config_mount(docs, pod, c):
    """The -c file named in args is a key of the ConfigMap mounted there."""
    cfg = c["args"][c["args"].index("-c") + 1]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vol_name = mounts[os.path.dirname(cfg)]
    vol = next(v for v in pod["volumes"] if v["name"] == vol_name)
    cm = docs[("ConfigMap", vol["configMap"]["name"])]
    assert os.path.basename(cfg) in cm["data"]


def test_k8s_shipper_daemonset_and_sidecar():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_docs()}
    ds = docs[("DaemonSet", "sluice-shipper")]
    pod = ds["spec"]["template"]["spec"]
    c = container_by_name(pod, "shipper")
    assert {p["containerPort"] for p in c["ports"]} == {5066}
    varlog = next(v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/var/log")
    mount = next(m for m in c["volumeMounts"] if m["name"] == varlog["name"])
    assert mount["readOnly"] is True and mount["mountPath"] == "/var/log"
    registry = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/sluice/shipper")
    reg_vol = next(v for v in pod["volumes"] if v["name"] == registry["name"])
    assert "hostPath" in reg_vol, "the registry must outlive the pod"
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Docker's json-file logs, where /var/log/containers links point: read-only.
    dl = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/docker/containers")
    assert dl["readOnly"] is True
    # The API-server enrichment's account: pods, get/list/watch, nothing else; no token
    # mounted until the enrichment is turned on.
    assert pod["serviceAccountName"] == "sluice-shipper"
    assert pod["automountServiceAccountToken"] is False
    role = docs[("ClusterRole", "sluice-shipper")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "list", "watch"]}]
    binding = docs[("ClusterRoleBinding", "sluice-shipper")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sluice-shipper",
                                    "namespace": "sluice"}]
    assert ("ServiceAccount", "sluice-shipper") in docs
    check_config_mount(docs, pod, c)
    # The kubelet's files are CRI (or json-file) lines: without type: container the
    # events would be the runtime's framing, not the messages, and carry no pod names.
    conf = yaml.safe_load(docs[("ConfigMap", "sluice-shipper-config")]["data"]["shipper.yml"])
    node_logs = [i for i in conf["inputs"] if any(p.startswith("/var/log/containers/")
                                                  for p in i["paths"])]
    assert node_logs and all(i.get("type") == "container" for i in node_logs)
    # sidecar: the app and the shipper share the log volume
    web = docs[("Deployment", "web")]["spec"]["template"]["spec"]
    side = container_by_name(web, "shipper")
    app = container_by_name(web, "web")
    assert side.get("restartPolicy") == "Always", "native sidecar (init container, restartPolicy Always)"
    shared = {m["name"] for m in side["volumeMounts"]} & {m["name"] for m in app["volumeMounts"]}
    assert shared, "the sidecar must mount the app's log volume"
    check_config_mount(docs, web, side)


def test_k8s_kustomization_lists_every_manifest():
    k = load_yaml("deploy", "k8s", "kustomization.yaml")
    files = {f for f in os.listdir(K8S_DIR) if f.endswith(".yaml") and f != "kustomization.yaml"}
    assert set(k["resources"]) == files
    images = {i["name"] for i in k["images"]}
    used = set()
    for _, d in k8s_docs():
        pod = d.get("spec", {}).get("template", {}).get("spec")
        if pod:
            used |= {c["image"].split(":")[0] for c in pod.get("containers", []) + pod.get("initContainers", [])
                     if c["image"].startswith("sluice-")}
    assert images == used == {"sluice-aggregator", "sluice-shipper"}
    assert all(d["metadata"].get("namespace", "sluice") == "sluice" for _, d in k8s_docs())


def test_k8s_configmaps_pass_test_config(tmp_path):
    for f, d in k8s_docs():
        if d["kind"] != "ConfigMap":
            continue
        for key, text in d["data"].items():
            p = tmp_path / f"{d['metadata']['name']}-{key}"
            p.write_text(text)
            if "shipper" in key:
                check_shipper_config(p, {"NODE_NAME": "node-1", "POD_NAME": "web-0"})
            else:
                check_aggregator_config(p, tmp_path)


# ============================================================ config overlays

def check_shipper_config(p, env=None):
    need_binaries()
    r = run([SHIPPER, "-t", "-c", str(p)], env=dict(os.environ, **(env or {})))
    assert r.returncode == 0 and "configuration OK" in r.stdout, f"{p}: {r.stderr}"


PLUGIN_NOT_BUILT = re.compile(r":\d+:\d+: (?:pipeline\.filters|outputs)\[\d+\]: unknown (filter|output) '(\w+)'$")


def check_aggregator_config(p, tmp_path):
    """`sluice-aggregator -t` must accept the file. While a filter or output that
    docs name is not compiled in yet, -t reports it as unknown: that error
    alone is tolerated, and the rest of the file is then checked with those
    sections replaced by ones that exist (stdout), so every other key is still
    validated. Returns the plugins that were missing."""
    need_binaries()
    r = run([AGGREGATOR, "-t", "-c", str(p)])
    if r.returncode == 0:
        assert "configuration OK" in r.stdout
        return set()
    missing = set()
    # FILE:LINE:COLUMN: message lines are the config errors; the rest is log output
    errors = [l for l in r.stderr.splitlines() if re.match(r"^\S+:\d+:\d+: ", l)]
    assert errors, f"{p}: exit {r.returncode} without a config error: {r.stderr}"
    for line in errors:
        m = PLUGIN_NOT_BUILT.search(line)
        assert m, f"{p}: {line}"
        kind, name = m.groups()
        assert name in (DOCUMENTED_FILTERS if kind == "filter" else DOCUMENTED_OUTPUTS), line
        missing.add(name)
    conf = yaml.safe_load(open(p))
    conf.setdefault("pipeline", {})["filters"] = [
        f for f in conf["pipeline"].get("filters") or [] if next(iter(f)) not in missing]
    conf["outputs"] = [o for o in conf["outputs"] if next(iter(o)) not in missing] or [{"stdout": {}}]
    stripped = tmp_path / ("stripped-" + os.path.basename(str(p)))
    stripped.write_text(yaml.safe_dump(conf))
    r = run([AGGREGATOR, "-t", "-c", str(stripped)])
    assert r.returncode == 0, f"{p} (without {missing}): {r.stderr}"
    return missing


OVERLAYS = ["development", "production"]


@pytest.mark.parametrize("env", OVERLAYS)
def test_shipper_overlays(env):
    p = path("deploy", "config", env, "shipper.yml")
    text = open(p).read()
    assert len(re.findall(r"\$\{[A-Z0-9_]+:-[^}]*\}", text)) >= 4, "overlays take values from ${VAR:-default}"
    check_shipper_config(p)
    check_shipper_config(p, {"SLUICE_AGGREGATOR": "agg.example:5044", "SLUICE_AGGREGATOR_1": "a:5044",
                             "SLUICE_METRICS_LISTEN": "0.0.0.0:5066", "SLUICE_SERVICE": "api"})
    # the defaults keep the documented metrics address
    assert "${SLUICE_METRICS_LISTEN:-127.0.0.1:5066}" in text


@pytest.mark.parametrize("env", OVERLAYS)
def test_aggregator_overlays(env, tmp_path):
    p = path("deploy", "config", env, "aggregator.yml")
    text = open(p).read()
    assert len(re.findall(r"\$\{[A-Z0-9_]+:-[^}]*\}", text)) >= 4
    assert "${SLUICE_METRICS_LISTEN:-127.0.0.1:9600}" in text
    missing = check_aggregator_config(p, tmp_path)
    # the stack needs these outputs: once they are compiled in, nothing may be missing
    assert missing <= DOCUMENTED_FILTERS | DOCUMENTED_OUTPUTS


def test_aggregator_config_check_rejects_typos(tmp_path):
    # negative control for the tolerance above: a misspelt key still fails
    p = tmp_path / "typo.yml"
    p.write_text(open(path("deploy", "config", "development", "aggregator.yml")).read()
                 .replace("client_inactivity_timeout:", "client_inactivty_timeout:"))
    with pytest.raises(AssertionError):
        check_aggregator_config(p, tmp_path)


# ============================================================ systemd units

UNITS = ["sluice-shipper.service", "sluice-aggregator.service"]


def parse_unit(name):
    sections, cur = {}, None
    for line in open(path("deploy", "systemd", name)):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), {})
            continue
        k, _, v = line.partition("=")
        cur.setdefault(k.strip(), []).append(v.strip())
    return sections


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_settings(unit):
    s = parse_unit(unit)["Service"]
    daemon = unit.replace(".service", "")
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert "/bin/kill -HUP $MAINPID" in s["ExecReload"]
    assert s["ExecReload"][0].endswith(f"--test-config -c /etc/sluice/{daemon[7:]}.yml"), \
        "reload checks the config first"
    assert one["ExecStart"].startswith(f"/usr/local/bin/{daemon} -c /etc/sluice/{daemon[7:]}.yml")
    assert one["Restart"] == "on-failure"
    assert one["User"] == "sluice"
    assert "sluice" in one["StateDirectory"].split()
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes"
    assert one["ReadWritePaths"].startswith("/var/lib/sluice")
    assert one["RestartPreventExitStatus"] == "2", "exit 2 = bad config: no restart loop"
    stop = int(one["TimeoutStopSec"].rstrip("s"))
    assert stop > 10, "TimeoutStopSec must exceed shutdown_timeout (10s)"
    assert parse_unit(unit)["Install"]["WantedBy"] == ["multi-user.target"]


def unit_copies(tmp_path):
    """The units with /usr/local/bin/ pointed at the built binaries, so that
    systemd-analyze verify can check that the commands exist."""
    need_binaries()
    out = []
    for u in UNITS:
        text = open(path("deploy", "systemd", u)).read().replace("/usr/local/bin/", BUILD + "/")
        (tmp_path / u).write_text(text)
        out.append(str(tmp_path / u))
    return out


def test_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing: run tests/deploy/setup")
    units = unit_copies(tmp_path)
    r = run(["systemd-analyze", "verify"] + units)
    noise = [l for l in r.stderr.splitlines() if any(os.path.basename(u) in l for u in units)]
    assert r.returncode == 0 and not noise, r.stderr
    # negative control: a misspelt directive is reported
    bad = tmp_path / "bad" / UNITS[0]
    bad.parent.mkdir()
    bad.write_text(open(units[0]).read().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    r = run(["systemd-analyze", "verify", str(bad)])
    assert "Unknown key" in r.stderr and "ProtectSytem" in r.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_security_exposure(unit, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing: run tests/deploy/setup")
    copy = [u for u in unit_copies(tmp_path) if u.endswith(unit)][0]
    r = run(["systemd-analyze", "security", "--offline=yes", copy])
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.5, f"exposure {m.group(1)} (0 = locked down, 10 = unprotected)"


def test_systemd_sysusers(tmp_path):
    if not shutil.which("systemd-sysusers"):
        pytest.fail("systemd-sysusers missing: run tests/deploy/setup")
    conf = tmp_path / "sluice.conf"
    shutil.copy(path("deploy", "systemd", "sluice.sysusers"), conf)
    r = run(["systemd-sysusers", "--dry-run", str(conf)])
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    # on a machine that already has the user, sysusers has nothing to create
    exists = run(["getent", "passwd", "sluice"]).returncode == 0
    assert exists or "Creating user 'sluice'" in out, out
    assert "ignoring" not in out.lower() and "failed" not in out.lower(), out


# sd_notify readiness of the real daemons, the way systemd sees it (Type=notify).

def recv_until(sock, want, deadline):
    got = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if any(want in m.split("\n") for m in got):
            return got
    raise AssertionError(f"no {want!r} on NOTIFY_SOCKET within {deadline}s (got {got}): "
                         "the daemon must call sl_notify() (lib/notify.h)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def notify_socket(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = str(tmp_path / "notify.sock")
    s.bind(addr)
    yield s, addr
    s.close()


def daemon_configs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    agg_port, agg_metrics, shp_metrics = free_port(), free_port(), free_port()
    (tmp_path / "aggregator.yml").write_text(yaml.safe_dump({
        "input": {"listen": f"127.0.0.1:{agg_port}"},
        "outputs": [{"file": {"path": str(tmp_path / "events.ndjson")}}],
        "metrics": {"listen": f"127.0.0.1:{agg_metrics}"}}))
    (tmp_path / "shipper.yml").write_text(yaml.safe_dump({
        "inputs": [{"id": "t", "paths": [str(logs / "*.log")], "start_position": "beginning"}],
        "output": {"hosts": [f"127.0.0.1:{agg_port}"]},
        "registry": {"path": str(tmp_path / "registry")},
        "metrics": {"listen": f"127.0.0.1:{shp_metrics}"}}))
    return {"aggregator": (tmp_path / "aggregator.yml", agg_metrics),
            "shipper": (tmp_path / "shipper.yml", shp_metrics)}


@pytest.mark.parametrize("daemon", ["shipper", "aggregator"])
def test_sd_notify_readiness(daemon, notify_socket, tmp_path):
    need_binaries()
    sock, addr = notify_socket
    conf, port = daemon_configs(tmp_path)[daemon]
    binary = SHIPPER if daemon == "shipper" else AGGREGATOR
    p = subprocess.Popen([binary, "-c", str(conf)], env=dict(os.environ, NOTIFY_SOCKET=addr),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        recv_until(sock, "READY=1", DEADLINE)
        # READY=1 means serving: the metrics endpoint answers at once
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        p.send_signal(signal.SIGHUP)
        got = recv_until(sock, "RELOADING=1", DEADLINE)
        if not any("READY=1" in m.split("\n") for m in got[got.index(next(
                m for m in got if "RELOADING=1" in m.split("\n"))):]):
            recv_until(sock, "READY=1", DEADLINE)
        p.send_signal(signal.SIGTERM)
        recv_until(sock, "STOPPING=1", DEADLINE)
        assert p.wait(timeout=DEADLINE) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ====================================================== Prometheus + promtool

def promtool(*args, **kw):
    r = run([PROMTOOL] + list(args), **kw)
    if r.returncode != 0 and "No such file" in r.stderr:
        pytest.fail("promtool unavailable: run tests/deploy/setup")
    return r


def test_promtool_check_config():
    r = promtool("check", "config", path("deploy", "prometheus", "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_promtool_check_config_kubernetes():
    # Debian's prometheus is built without Kubernetes service discovery (it rejects
    # kubernetes_sd_configs as an unknown field), so this one needs upstream promtool.
    if not os.access(PROMTOOL_UPSTREAM, os.X_OK):
        pytest.skip("upstream promtool not built (optional step of tests/deploy/setup); Debian's "
                    "promtool cannot parse kubernetes_sd_configs")
    r = run([PROMTOOL_UPSTREAM, "check", "config",
             path("deploy", "prometheus", "prometheus-kubernetes.yml")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_rules():
    r = promtool("check", "rules", path("deploy", "prometheus", "alerts.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"SUCCESS: \d+ rules found", r.stdout + r.stderr)


def test_promtool_test_rules():
    # alerts_test.yml states when each alert fires and when it must stay quiet
    r = promtool("test", "rules", "alerts_test.yml", cwd=path("deploy", "prometheus"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_cover_the_issue_and_use_spec_metrics():
    rules = load_yaml("deploy", "prometheus", "alerts.yml")
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    # shipper not ACKed for N minutes, output failures, dead-letter growth
    assert "sluice_shipper_events_acked_total" in alerts["SluiceShipperNotAcked"]["expr"]
    assert 'result="failed"' in alerts["SluiceOutputFailing"]["expr"]
    assert 'result="dead_letter"' in alerts["SluiceDeadLetterGrowing"]["expr"]
    for name, r in alerts.items():
        names = promql_metric_names(r["expr"])
        assert names and names <= ALLOWED_SERIES, f"{name}: {names - ALLOWED_SERIES}"
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
    tested = {t["alertname"] for case in load_yaml("deploy", "prometheus", "alerts_test.yml")["tests"]
              for t in case["alert_rule_test"]}
    core = {"SluiceShipperNotAcked", "SluiceOutputFailing", "SluiceDeadLetterGrowing",
            "SluiceOutputRetrying", "SluiceAggregatorDown", "SluiceShipperDisconnected"}
    assert core <= tested, f"untested alerts: {core - tested}"


def test_kubernetes_scrape_config_matches_manifests():
    prom = load_yaml("deploy", "prometheus", "prometheus-kubernetes.yml")
    relabel = prom["scrape_configs"][0]["relabel_configs"]
    assert any(r.get("target_label") == "job" and
               r["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"] for r in relabel)
    for f, d in k8s_docs():
        if d["kind"] in ("Deployment", "DaemonSet"):
            ann = d["spec"]["template"]["metadata"]["annotations"]
            assert ann["prometheus.io/scrape"] == "true"
            pod = d["spec"]["template"]["spec"]
            ports = {p["containerPort"] for c in pod.get("containers", []) + pod.get("initContainers", [])
                     for p in c.get("ports", []) if p["name"] == "metrics"}
            assert ports == {int(ann["prometheus.io/port"])}, f"{d['metadata']['name']}"


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory):
    """Both daemons, started for real, and their /metrics text."""
    need_binaries()
    tmp = tmp_path_factory.mktemp("metrics")
    confs = daemon_configs(tmp)
    procs, out = [], {}
    try:
        for name in ("aggregator", "shipper"):
            conf, port = confs[name]
            binary = AGGREGATOR if name == "aggregator" else SHIPPER
            procs.append(subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            end = time.monotonic() + DEADLINE
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        out[name] = r.read().decode()
                        break
                except OSError:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.1)
        # a few lines through the pipeline, so that labelled series exist
        (tmp / "logs" / "a.log").write_text("one\ntwo\nthree\n")
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            with urllib.request.urlopen(f"http://127.0.0.1:{confs['shipper'][1]}/metrics") as r:
                text = r.read().decode()
            if re.search(r"^sluice_shipper_events_acked_total(\{[^}]*\})? [1-9]", text, re.M):
                break
            time.sleep(0.1)
        for name in ("aggregator", "shipper"):
            with urllib.request.urlopen(f"http://127.0.0.1:{confs[name][1]}/metrics") as r:
                out[name] = r.read().decode()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                p.kill()
    return out


@pytest.mark.parametrize("daemon", ["shipper", "aggregator"])
def test_promtool_check_metrics(daemon, live_metrics):
    text = live_metrics[daemon]
    r = promtool("check", "metrics", input=text)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_promtool_check_metrics_rejects_bad_exposition():
    # negative control: promtool's linter is really consulted
    r = promtool("check", "metrics", input="# TYPE sluice_bad counter\nsluice_bad 1\n")
    assert r.returncode != 0


# Present in every exposition once the daemon has run; the filter series exist
# only when the pipeline has filters (docs/operations.md labels them by filter).
CONDITIONAL = {"sluice_aggregator_filter_events_total"}


@pytest.mark.parametrize("daemon", ["shipper", "aggregator"])
def test_spec_metrics_exposed(daemon, live_metrics):
    families = set(re.findall(r"^# TYPE (\S+) ", live_metrics[daemon], re.M))
    want = {m for m in DOCUMENTED_METRICS if m.startswith(f"sluice_{daemon}_") or m.startswith("process_")}
    missing = want - families - CONDITIONAL
    assert not missing, f"{daemon} /metrics lacks {missing}"


# ===================================================================== Grafana

@pytest.fixture(scope="module")
def dashboard():
    with open(path("deploy", "grafana", "dashboards", "sluice.json")) as f:
        return json.load(f)


def grafana_exprs(dashboard):
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_structure(dashboard):
    assert dashboard["uid"] == "sluice-overview" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ds = load_yaml("deploy", "grafana", "provisioning", "datasources", "prometheus.yml")["datasources"][0]
    assert variables["datasource"]["current"]["value"] == ds["uid"]
    cells = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']} overlaps another"
                cells.add((x, y))
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"]
    # both stages and the processes are on it
    text = json.dumps(dashboard)
    for m in ("sluice_shipper_events_acked_total", "sluice_aggregator_output_events_total",
              "sluice_shipper_batch_ack_seconds_bucket", "process_resident_memory_bytes"):
        assert m in text


def test_grafana_dashboard_uses_only_spec_metrics(dashboard):
    for title, expr in grafana_exprs(dashboard):
        names = promql_metric_names(expr)
        assert names, f"{title}: {expr}"
        assert names <= ALLOWED_SERIES, f"{title}: unknown metrics {names - ALLOWED_SERIES}"
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            m = re.match(r"label_values\((\w+),\s*\w+\)", v["query"]["query"])
            assert m and m.group(1) in ALLOWED_SERIES, v["name"]


def test_grafana_exprs_parse(dashboard, tmp_path):
    # Grafana's variables replaced by what they expand to, then promtool parses each expression
    exprs = []
    for _, e in grafana_exprs(dashboard):
        e = e.replace("$__rate_interval", "1m").replace("$shipper_job", ".+") \
             .replace("$aggregator_job", ".+")
        assert "$" not in e, e
        exprs.append(e)
    r = promtool_check_exprs(exprs, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # negative control
    r = promtool_check_exprs(["sum(rate(x[5m])"], tmp_path)
    assert r.returncode != 0


def test_grafana_provisioning_files():
    ds = load_yaml("deploy", "grafana", "provisioning", "datasources", "prometheus.yml")
    assert ds["apiVersion"] == 1
    d = ds["datasources"][0]
    assert d["type"] == "prometheus" and d["access"] == "proxy" and d["isDefault"] is True
    prov = load_yaml("deploy", "grafana", "provisioning", "dashboards", "sluice.yml")
    assert prov["apiVersion"] == 1 and prov["providers"][0]["type"] == "file"


# ======================================================= Kibana + Elasticsearch

@pytest.fixture(scope="module")
def saved_objects():
    objs = []
    with open(path("deploy", "kibana", "sluice-saved-objects.ndjson")) as f:
        for n, line in enumerate(f, 1):
            assert line.strip(), f"line {n} is empty"
            objs.append(json.loads(line))
    return objs


@pytest.fixture(scope="module")
def template():
    with open(path("deploy", "elasticsearch", "index-template.json")) as f:
        return json.load(f)


def flat_mapping(props, prefix=""):
    out = {}
    for k, v in props.items():
        if "properties" in v:
            out.update(flat_mapping(v["properties"], prefix + k + "."))
        if "type" in v and v["type"] != "object":
            out[prefix + k] = v["type"]
    return out


def test_kibana_saved_objects(saved_objects, template):
    by_key = {(o["type"], o["id"]): o for o in saved_objects}
    assert len(by_key) == len(saved_objects), "duplicate saved objects"
    types = {o["type"] for o in saved_objects}
    assert types == {"index-pattern", "search", "visualization", "dashboard"}
    dv = [o for o in saved_objects if o["type"] == "index-pattern"]
    assert len(dv) == 1
    assert dv[0]["attributes"]["title"] == "logs-*"
    assert dv[0]["attributes"]["timeFieldName"] == "@timestamp"
    mapping = flat_mapping(template["template"]["mappings"]["properties"])
    aggregatable = {"keyword", "date", "long", "integer", "double", "float", "ip", "boolean"}
    for o in saved_objects:
        for ref in o.get("references", []):
            assert (ref["type"], ref["id"]) in by_key, f"{o['id']}: dangling reference {ref}"
        attrs = o["attributes"]
        meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if meta:
            src = json.loads(meta)
            if "indexRefName" in src:
                assert src["indexRefName"] in {r["name"] for r in o["references"]}
        if o["type"] == "visualization":
            vis = json.loads(attrs["visState"])
            assert vis["title"] == attrs["title"]
            for agg in vis["aggs"]:
                field = agg["params"].get("field")
                if field:
                    assert mapping.get(field) in aggregatable, \
                        f"{o['id']}: {field} is {mapping.get(field)} in the index template, not aggregatable"
        if o["type"] == "search":
            for col in attrs["columns"]:
                assert col in mapping or col.startswith("fields."), col
        if o["type"] == "dashboard":
            panels = json.loads(attrs["panelsJSON"])
            names = {r["name"] for r in o["references"]}
            assert panels and {p["panelRefName"] for p in panels} == names
            json.loads(attrs["optionsJSON"])
            assert attrs["timeRestore"] in (True, False)


def test_es_index_template(template, saved_objects):
    assert template["index_patterns"] == ["logs-*"]
    # Elasticsearch's built-in "logs" template (priority 100, logs-*-*) would make
    # logs-<service>-<date> a data stream, which plain bulk "index" actions cannot write
    assert template["priority"] > 100
    assert "data_stream" not in template
    mappings = template["template"]["mappings"]
    props = mappings["properties"]
    assert props["@timestamp"] == {"type": "date"}
    flat = flat_mapping(props)
    for f in ("message", "host.name", "log.file.path", "log.offset", "agent.type", "fields.service"):
        assert f in flat, f
    assert flat["log.offset"] == "long" and flat["host.name"] == "keyword"
    known = {"date", "keyword", "text", "match_only_text", "long", "integer", "double", "float",
             "boolean", "ip", "object", "flattened", "wildcard"}
    assert set(flat.values()) <= known
    settings = template["template"]["settings"]["index"]
    assert int(settings["number_of_shards"]) >= 1
    # every index name the configs write matches the template
    for f in ("deploy/config/development/aggregator.yml", "deploy/config/production/aggregator.yml"):
        conf = load_yaml(f)
        es = [o["elasticsearch"] for o in conf["outputs"] if "elasticsearch" in o][0]
        assert re.fullmatch(r"logs-.+", es["index"]), es["index"]
    # the data view covers the same indices
    assert [o for o in saved_objects if o["type"] == "index-pattern"][0]["attributes"]["title"] == \
        template["index_patterns"][0]


class Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in Elasticsearch / Kibana: records each request, answers canned JSON."""
    status, body, requests = 200, b"{}", []

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        type(self).requests.append({"method": self.command, "path": self.path,
                                    "headers": dict(self.headers), "body": self.rfile.read(n)})
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)

    do_PUT = do_POST = do_GET = handle_one

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_server():
    handler = type("H", (Recorder,), {"requests": [], "status": 200, "body": b"{}"})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield handler, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_apply_template_script(fake_server, template):
    h, url = fake_server
    h.body = b'{"acknowledged":true}'
    r = run(["bash", path("deploy", "elasticsearch", "apply-template.sh"), url],
            env=dict(os.environ, ES_API_KEY="aWQ6a2V5"))
    assert r.returncode == 0, r.stderr
    req = h.requests[-1]
    assert req["method"] == "PUT" and req["path"] == "/_index_template/sluice"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Authorization"] == "ApiKey aWQ6a2V5"
    assert json.loads(req["body"]) == template
    # an error from Elasticsearch is an error of the script
    h.status, h.body = 400, b'{"error":{"type":"mapper_parsing_exception"}}'
    r = run(["bash", path("deploy", "elasticsearch", "apply-template.sh"), url])
    assert r.returncode != 0 and "400" in r.stderr


def test_kibana_import_script(fake_server):
    h, url = fake_server
    h.body = b'{"success":true,"successCount":6}'
    r = run(["bash", path("deploy", "kibana", "import.sh"), url])
    assert r.returncode == 0, r.stderr
    req = h.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/api/saved_objects/_import?overwrite=true"
    assert req["headers"]["kbn-xsrf"] == "true"
    assert req["headers"]["Content-Type"].startswith("multipart/form-data")
    assert open(path("deploy", "kibana", "sluice-saved-objects.ndjson"), "rb").read() in req["body"]
    h.body = b'{"success":false,"errors":[{"id":"x"}]}'
    r = run(["bash", path("deploy", "kibana", "import.sh"), url])
    assert r.returncode != 0


# ================================================= TLS renewal hook (certbot)

def test_certbot_deploy_hook(tmp_path):
    live = tmp_path / "live" / "logs.example"
    live.mkdir(parents=True)
    (live / "fullchain.pem").write_text("CERT v2\n")
    (live / "privkey.pem").write_text("KEY v2\n")
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "aggregator.crt").write_text("CERT v1\n")
    calls = tmp_path / "calls"
    fake = tmp_path / "reload"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(0o755)
    env = dict(os.environ, RENEWED_LINEAGE=str(live), SLUICE_TLS_DIR=str(tls),
               SLUICE_TLS_OWNER=f"{os.getuid()}:{os.getgid()}", SLUICE_RELOAD_CMD=str(fake),
               SLUICE_UNITS="sluice-aggregator sluice-shipper")
    hook = path("deploy", "certbot", "sluice-deploy-hook.sh")
    r = run(["sh", hook], env=env)
    assert r.returncode == 0, r.stderr
    assert (tls / "aggregator.crt").read_text() == "CERT v2\n"
    assert (tls / "aggregator.key").read_text() == "KEY v2\n"
    assert oct((tls / "aggregator.key").stat().st_mode & 0o777) == "0o640"
    assert calls.read_text().split() == ["sluice-aggregator", "sluice-shipper"]
    assert not [f for f in os.listdir(tls) if f.startswith(".")], "temporary files left behind"
    # a missing key: nothing replaced, no reload
    (live / "privkey.pem").unlink()
    (live / "fullchain.pem").write_text("CERT v3\n")
    r = run(["sh", hook], env=env)
    assert r.returncode != 0
    assert (tls / "aggregator.crt").read_text() == "CERT v2\n"
    assert calls.read_text().split() == ["sluice-aggregator", "sluice-shipper"]


# ======================================================================= docs

def test_docs_cover_every_asset():
    doc = open(path("docs", "deploy.md")).read()
    for ref in ("docker-compose.yml", "deploy/docker/Dockerfile", "deploy/k8s/", "deploy/systemd/",
                "deploy/prometheus/alerts.yml", "deploy/grafana/", "deploy/kibana/import.sh",
                "deploy/elasticsearch/apply-template.sh", "deploy/config/development",
                "deploy/config/production", "deploy/certbot/sluice-deploy-hook.sh", "SIGHUP",
                "tests/deploy/setup", "kubeconform", "promtool", "systemd-analyze"):
        assert ref in doc, f"docs/deploy.md never mentions {ref}"
    # every deploy/ file is named somewhere in the doc (by path or file name)
    for dirpath, _, files in os.walk(DEPLOY):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            assert rel in doc or f in doc, f"docs/deploy.md never mentions {rel}"

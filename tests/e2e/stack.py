"""A shipper and an aggregator (file output) wired together in a test's tmp_path,
and helpers to write log lines and compare what arrived."""

from conftest import (AGGREGATOR, SHIPPER, free_port, metrics_of, read_ndjson, wait_for,
                      wait_port, write_config)


class Stack:
    """One aggregator (file output) and a shipper pointed at it, in tmp_path."""

    def __init__(self, tmp_path, procs, compression="zstd", start_position="beginning",
                 extra_input="", extra_output="", paths=None, extra_top="", outputs=None,
                 shutdown_timeout="10s", flush_interval="100ms", ship_timeout="30s"):
        """outputs: the aggregator's `outputs:` items as YAML (default: a file output
        to self.out); the rest shapes the shipper's config."""
        self.tmp = tmp_path
        self.procs = procs
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.out = tmp_path / "events.ndjson"
        self.agg_port = free_port()
        self.agg_metrics = free_port()
        self.ship_metrics = free_port()
        self.write_aggregator(outputs or f'  - file: {{path: "{self.out}"}}\n', shutdown_timeout)
        self.ship_cfg = write_config(tmp_path / "shipper.yml", f"""
inputs:
  - id: app
    paths: {paths or [str(self.logs) + "/*.log"]}
    start_position: {start_position}
{extra_input}
output:
  hosts: ["127.0.0.1:{self.agg_port}"]
  compression: {compression}
  flush_interval: {flush_interval}
  timeout: {ship_timeout}
  backoff: {{init: 100ms, max: 1s}}
{extra_output}
registry:
  path: {tmp_path}/registry
  flush: 100ms
metrics:
  listen: 127.0.0.1:{self.ship_metrics}
{extra_top}
""")
        self.aggregator = None
        self.shipper = None

    def write_aggregator(self, outputs, shutdown_timeout="10s"):
        self.agg_cfg = write_config(self.tmp / "aggregator.yml", f"""
input:
  listen: 127.0.0.1:{self.agg_port}
outputs:
{outputs}
metrics:
  listen: 127.0.0.1:{self.agg_metrics}
shutdown_timeout: {shutdown_timeout}
""")

    def start_aggregator(self):
        self.aggregator = self.procs([AGGREGATOR, "-c", str(self.agg_cfg)],
                                     str(self.tmp / "aggregator.log"))
        wait_port(self.agg_port, self.aggregator)
        return self.aggregator

    def start_shipper(self):
        self.shipper = self.procs([SHIPPER, "-c", str(self.ship_cfg)],
                                  str(self.tmp / "shipper.log"))
        wait_port(self.ship_metrics, self.shipper)
        return self.shipper

    def ship_metric(self, name):
        return metrics_of(self.ship_metrics).get(name, 0)

    def agg(self):
        """The aggregator's metrics."""
        return metrics_of(self.agg_metrics)

    metrics = agg

    def acked(self):
        return metrics_of(self.ship_metrics)["sluice_shipper_events_acked_total"]

    def stop_all(self):
        """Stops shipper then aggregator; both must exit 0 (ASan/UBSan clean)."""
        for p in (self.shipper, self.aggregator):
            if p is not None:
                rc = p.stop()
                assert rc == 0, f"exit {rc}:\n{p.logtext()[-4000:]}"

    def events(self):
        return read_ndjson(self.out)

    def wait_events(self, n):
        def enough():
            got = len(self.events())
            assert got <= n, f"{got} events arrived, expected {n}"
            return got == n
        wait_for(enough, what=f"{n} events in {self.out}")
        return self.events()


def append_lines(path, lines, newline="\n"):
    """Appends lines; returns [(offset, text)] of each line's first byte."""
    out = []
    with open(path, "ab") as f:
        off = f.tell()
        for line in lines:
            data = (line + newline).encode()
            out.append((off, line))
            f.write(data)
            off += len(data)
    return out


def append_origins(path, lines):
    """Appends lines; returns {(path, offset): text}."""
    return {(str(path), off): text for off, text in append_lines(path, lines)}


def by_origin(events):
    """{(path, offset): message}, asserting no (path, offset) arrived twice."""
    seen = {}
    for e in events:
        key = (e["log"]["file"]["path"], e["log"]["offset"])
        assert key not in seen, f"duplicate event {key}"
        seen[key] = e["message"]
    return seen

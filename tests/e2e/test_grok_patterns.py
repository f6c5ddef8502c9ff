"""Conformance of the grok pattern library (config/patterns/legacy and
config/patterns/ecs-v1): for every family, real-looking lines through the real
grok filter (`sluice-aggregator --test-pipeline`) in both naming modes, with the
exact fields (values and JSON types) each one must give, and lines that must
not match.

The cases are data: tests/data/grok/<family>.json, a list of
  {"pattern": "%{HAPROXYHTTP}", "line": "...",
   "legacy": {fields} | null, "ecs": {fields} | null}
where a mode's value is the exact set of fields grok adds (null: the line must
not match in that mode; key absent: the mode is not tried, the pattern being
one that mode does not define).

The line is in the field `grok_input` (not `line`, which Logstash's legacy
JAVASTACKTRACEPART captures into). Each mode's directory is given to grok as patterns_dir, on top of the
built-in library; when grok has the `ecs_compatibility` option, the test also
selects the matching mode with it, so the same cases hold for the embedded
library."""

import json
import os
import subprocess

import pytest

from conftest import AGGREGATOR, ROOT, write_config

DATA = os.path.join(ROOT, "tests", "data", "grok")
PATTERNS = os.path.join(ROOT, "config", "patterns")
MODES = {"legacy": ("legacy", "disabled"), "ecs": ("ecs-v1", "v8")}
FAMILIES = sorted(f[:-5] for f in os.listdir(DATA) if f.endswith(".json"))


def run_pipeline(tmp_path, config, events):
    path = write_config(os.path.join(tmp_path, "grok.yml"), json.dumps(config))
    stdin = "".join(json.dumps(e) + "\n" for e in events)
    return subprocess.run([AGGREGATOR, "--test-pipeline", "--json", "-c", path], input=stdin,
                          capture_output=True, text=True, timeout=120)


def events_of(text):
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        v, i = dec.raw_decode(text, i)
        out.append(v)
    return out


_has_ecs_option = None


def has_ecs_option(tmp_path):
    """Whether this grok has `ecs_compatibility` (asked once)."""
    global _has_ecs_option
    if _has_ecs_option is None:
        config = {"pipeline": {"filters": [{"grok": {"patterns": ["%{WORD:w}"],
                                                     "ecs_compatibility": "disabled"}}]},
                  "outputs": [{"stdout": {}}]}
        r = run_pipeline(tmp_path, config, [])
        _has_ecs_option = r.returncode == 0
    return _has_ecs_option


def typed(v):
    """v with every scalar paired with its JSON type, so that 1, 1.0 and "1" differ."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return (type(v).__name__, v)


def cases_of(family, mode):
    with open(os.path.join(DATA, family + ".json")) as f:
        cases = json.load(f)
    return [(i, c) for i, c in enumerate(cases) if mode in c]


def grok_all(tmp_path, mode, cases):
    """Runs each case's line through its pattern; returns {case index: event}."""
    directory, ecs = MODES[mode]
    filters = []
    for i, c in cases:
        # A short budget: a line that backtracks badly fails (tagged
        # _groktimeout) instead of holding the test for grok's default 30 s.
        opts = {"match": {"grok_input": c["pattern"]}, "patterns_dir": [os.path.join(PATTERNS, directory)],
                "when": {"field": "case", "equals": str(i)}, "timeout": "5s"}
        if has_ecs_option(tmp_path):
            opts["ecs_compatibility"] = ecs
        filters.append({"grok": opts})
    config = {"pipeline": {"filters": filters}, "outputs": [{"stdout": {}}]}
    r = run_pipeline(tmp_path, config, [{"case": str(i), "grok_input": c["line"]} for i, c in cases])
    assert r.returncode == 0, r.stderr
    out = {}
    for ev in events_of(r.stdout):
        out[int(ev.pop("case"))] = ev
    assert len(out) == len(cases), r.stderr
    return out


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("family", FAMILIES)
def test_family_lines_give_exact_fields(tmp_path, family, mode):
    cases = cases_of(family, mode)
    if not cases:
        pytest.skip(f"{family} has no {mode} patterns")
    got = grok_all(str(tmp_path), mode, cases)
    for i, c in cases:
        ev = got[i]
        assert ev.pop("grok_input") == c["line"]
        want = c[mode]
        where = f"{family} case {i} ({mode}) {c['pattern']}"
        if want is None:
            assert ev == {"tags": ["_grokparsefailure"]}, where
        else:
            assert typed(ev) == typed(want), where


def test_every_family_has_cases_in_both_modes_and_a_line_that_must_not_match():
    for family in FAMILIES:
        with open(os.path.join(DATA, family + ".json")) as f:
            cases = json.load(f)
        modes = {m for c in cases for m in MODES if m in c}
        assert "ecs" in modes, family
        if family != "zeek":  # Zeek's layouts exist only with ECS names, as in Logstash
            assert "legacy" in modes, family
        assert any(c.get(m, 0) is None for c in cases for m in MODES), family


def test_both_modes_ship_logstash_file_layout():
    # As in Logstash: Zeek's layouts are ECS only, and the ECS set keeps both
    # MCollective patterns in `mcollective`.
    legacy = set(os.listdir(os.path.join(PATTERNS, "legacy")))
    ecs = set(os.listdir(os.path.join(PATTERNS, "ecs-v1")))
    assert ecs - legacy == {"zeek"}
    assert legacy - ecs == {"mcollective-patterns"}

"""The option tables in the docs are generated from the plugins' own tables
(scripts/plugin-docs): this fails when a plugin's options changed and the docs
were not regenerated, so docs and code cannot drift apart."""

import os
import subprocess

from conftest import AGGREGATOR, ROOT


def test_plugin_docs_match_the_code():
    r = subprocess.run([os.path.join(ROOT, "scripts", "plugin-docs"), "--check", AGGREGATOR],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_plugin_docs_prints_a_table_per_plugin():
    r = subprocess.run([AGGREGATOR, "--plugin-docs", "json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("`json` (filter): ")
    assert "| option | type | default | description |" in lines
    assert any(line.startswith("| `source` (or `field`) | field reference | `message` |")
               for line in lines)
    assert any(line.startswith("| `tag_on_failure` | list of strings | `[_jsonparsefailure]` |")
               for line in lines)
    r = subprocess.run([AGGREGATOR, "--plugin-docs", "nope"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "no plugin named 'nope'" in r.stderr

"""The `useragent` filter in the real aggregator, through `--test-pipeline`:
the built-in uap-core rules are compiled in, both field-naming modes, and a
regexes.yaml of the user's."""

import json
import os

from test_test_pipeline import events_of, run

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1")


def config(filters):
    return "pipeline:\n  filters:\n" + filters + "outputs: [stdout: {}]\n"


def test_ecs_fields_from_user_agent_original(tmp_path):
    cfg = config("    - useragent: {source: '[user_agent][original]'}\n")
    lines = "".join(json.dumps({"user_agent": {"original": ua}}) + "\n"
                    for ua in (IPHONE, "curl/8.4.0", IPHONE))
    r = run(tmp_path, lines, "--json", config=cfg)
    assert r.returncode == 0, r.stderr
    evs = events_of(r.stdout)
    assert len(evs) == 3
    for ev in evs:
        ev.pop("@timestamp", None)
    # The version parts, as Logstash keeps them in ECS mode (--test-pipeline shows @metadata).
    assert evs[0].pop("@metadata") == {"filter": {"user_agent": {
        "version": {"major": "17", "minor": "1", "patch": "2"},
        "os": {"version": {"major": "17", "minor": "1", "patch": "2"}}}}}
    assert evs[1].pop("@metadata")["filter"]["user_agent"] == {
        "version": {"major": "8", "minor": "4", "patch": "0"}}
    evs[2].pop("@metadata")
    assert evs[0] == {"user_agent": {
        "original": IPHONE, "name": "Mobile Safari", "version": "17.1.2",
        "os": {"name": "iOS", "version": "17.1.2", "full": "iOS 17.1.2"},
        "device": {"name": "iPhone"}}}
    assert evs[1] == {"user_agent": {
        "original": "curl/8.4.0", "name": "curl", "version": "8.4.0",
        "os": {"name": "Other", "full": "Other"}, "device": {"name": "Other"}}}
    assert evs[2] == evs[0]  # the second time from the cache: the same fields
    assert r.stderr.strip().endswith("3 event(s) in, 3 out, 0 dropped")


def test_legacy_fields_with_target_and_custom_regexes(tmp_path):
    regexes = os.path.join(tmp_path, "regexes.yaml")
    with open(regexes, "w") as f:
        f.write("user_agent_parsers:\n"
                "  - regex: '(Shipper)/(\\d+)\\.(\\d+)'\n"
                "    family_replacement: 'sluice $1'\n")
    cfg = config("    - useragent: {source: message, target: ua, ecs_compatibility: disabled}\n"
                 f"    - useragent: {{source: message, target: mine, regexes: '{regexes}',"
                 " ecs_compatibility: disabled}\n")
    r = run(tmp_path, "Shipper/1.2 " + IPHONE + "\n", config=cfg)
    assert r.returncode == 0, r.stderr
    (ev,) = events_of(r.stdout)
    assert ev["ua"] == {"name": "Mobile Safari", "version": "17.1.2", "major": "17",
                        "minor": "1", "patch": "2", "os": "iOS", "os_name": "iOS",
                        "os_version": "17.1.2", "os_full": "iOS 17.1.2", "os_major": "17",
                        "os_minor": "1", "os_patch": "2", "device": "iPhone"}
    # The user's file has no os_parsers or device_parsers: "Other" for both.
    assert ev["mine"] == {"name": "sluice Shipper", "version": "1.2", "major": "1",
                          "minor": "2", "os": "Other", "os_name": "Other",
                          "os_full": "Other", "device": "Other"}


def test_bad_regexes_file_is_a_config_error(tmp_path):
    regexes = os.path.join(tmp_path, "bad.yaml")
    with open(regexes, "w") as f:
        f.write("user_agent_parsers:\n  - regex: '(x'\n")
    cfg = config(f"    - useragent: {{source: message, regexes: '{regexes}'}}\n")
    r = run(tmp_path, "x\n", config=cfg)
    assert r.returncode == 2
    assert "pipeline.filters[0] (useragent): " in r.stderr
    assert f"{regexes}: line 2: regex '(x': " in r.stderr

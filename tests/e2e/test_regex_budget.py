"""Every regex a user writes has a time budget (docs/operations.md, "Regex budgets"):
the shipper's line filters and the aggregator's `matches` conditions. A possessive
pattern never backtracks, so a budget counted in backtracking steps never runs out:
(a pattern without a literal: Oniguruma rejects a line lacking a required literal at once)
`\\w++\\s` on a 60 KB word scans to the end from each of its 60,000 start positions
(about 1.8e9 steps) - seconds to minutes of one thread. The budget stops each search
and the line or event is kept (shipped, delivered), never lost; the metric counts it."""

from conftest import wait_for
from stack import Stack, append_lines

WORD = "a" * 60000


def test_exclude_lines_out_of_time_ships_the_line(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="    exclude_lines: ['\\w++\\s']\n")
    s.start_aggregator()
    s.start_shipper()
    append_lines(s.logs / "a.log", ["before", WORD, "x DEBUG y", "after"])
    events = s.wait_events(3)
    assert [e["message"] for e in events] == ["before", WORD, "after"]
    wait_for(lambda: s.ship_metric("sluice_shipper_regex_timeouts_total") == 1,
             what="one regex timeout counted")
    # The shipper's one thread was not held: its metrics answer, and the line after
    # the long one was read and shipped (above).
    assert s.ship_metric("sluice_shipper_lines_dropped_total{reason=\"exclude_lines\"}") == 1
    s.stop_all()


def test_include_lines_out_of_time_ships_the_line(tmp_path, procs):
    s = Stack(tmp_path, procs, extra_input="    include_lines: ['\\w++\\s']\n")
    s.start_aggregator()
    s.start_shipper()
    append_lines(s.logs / "a.log", ["x ERROR 1", WORD, "quietline", "y ERROR 2"])
    events = s.wait_events(3)
    assert [e["message"] for e in events] == ["x ERROR 1", WORD, "y ERROR 2"]
    assert s.ship_metric("sluice_shipper_regex_timeouts_total") == 1
    s.stop_all()


def test_a_matches_condition_out_of_time_is_false(tmp_path, procs):
    s = Stack(tmp_path, procs)
    text = s.agg_cfg.read_text().replace(
        "outputs:\n",
        "pipeline:\n  filters:\n"
        "    - drop: {when: {field: message, matches: '\\w++\\s'}}\n"
        "outputs:\n", 1)
    s.agg_cfg.write_text(text)
    s.start_aggregator()
    s.start_shipper()
    append_lines(s.logs / "a.log", ["drop me", WORD, "keepme"])
    events = s.wait_events(2)
    assert [e["message"] for e in events] == [WORD, "keepme"]
    m = s.agg()
    assert m["sluice_aggregator_regex_timeouts_total"] == 1
    assert m['sluice_aggregator_filter_events_total{filter="drop",result="dropped"}'] == 1
    s.stop_all()

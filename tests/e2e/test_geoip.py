"""The `geoip` filter in the real aggregator, through `--test-pipeline`, on
the small City and ASN databases tests/data/geoip/make_test_dbs.py writes:
ECS and legacy fields, two lookups of one event into two targets, a private
address tagged, and the database errors that stop the start."""

import json
import os
import subprocess
import sys

from test_aggregator import start_agg  # noqa: F401 (fixture)
from test_test_pipeline import events_of, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_dbs(tmp_path):
    d = os.path.join(tmp_path, "mmdb")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data", "geoip",
                                                 "make_test_dbs.py"), d], check=True)
    return d


def config(filters):
    return "pipeline:\n  filters:\n" + filters + "outputs: [stdout: {}]\n"


def test_ecs_city_and_asn_of_source_and_destination(tmp_path):
    d = make_dbs(tmp_path)
    cfg = config(f"    - geoip: {{source: '[source][ip]', database: '{d}/City.mmdb'}}\n"
                 f"    - geoip: {{source: '[destination][ip]', database: '{d}/ASN.mmdb'}}\n")
    lines = (json.dumps({"source": {"ip": "81.2.69.160"}, "destination": {"ip": "1.128.0.1"}})
             + "\n" + json.dumps({"source": {"ip": "192.168.1.1"}}) + "\n")
    r = run(tmp_path, lines, "--json", config=cfg)
    assert r.returncode == 0, r.stderr
    first, second = events_of(r.stdout)
    first.pop("@timestamp", None)
    assert first == {
        "source": {"ip": "81.2.69.160", "geo": {
            "city_name": "London", "country_name": "United Kingdom", "continent_code": "EU",
            "country_iso_code": "GB", "postal_code": "EC2V", "region_name": "City of London",
            "region_iso_code": "GB-WLL", "timezone": "Europe/London",
            "location": {"lat": 51.5142, "lon": -0.0931}}},
        "destination": {"ip": "1.128.0.1", "as": {
            "number": 1221, "organization": {"name": "Telstra Pty Ltd"}}}}
    # A private address is in no database; the event without a destination
    # has nothing to look up: both lookups fail, one tag.
    assert second["source"] == {"ip": "192.168.1.1"}
    assert second["tags"] == ["_geoip_lookup_failure"]
    assert "destination" not in second


def test_legacy_fields(tmp_path):
    d = make_dbs(tmp_path)
    cfg = config(f"    - geoip: {{source: clientip, database: '{d}/City.mmdb',"
                 " ecs_compatibility: disabled, fields: [city_name, country_code2, location]}\n")
    r = run(tmp_path, "x\n", config=cfg.replace("clientip", "message"))
    assert r.returncode == 0, r.stderr
    (ev,) = events_of(r.stdout)
    assert ev["geoip"] == {} and ev["tags"] == ["_geoip_lookup_failure"]
    r = run(tmp_path, "2001:db8::1\n", config=cfg.replace("clientip", "message"))
    (ev,) = events_of(r.stdout)
    assert ev["geoip"] == {"country_code2": "AU", "location": {"lat": -33.494, "lon": 143.2104}}


def test_database_errors_stop_the_start(tmp_path):
    d = make_dbs(tmp_path)
    r = run(tmp_path, "x\n", config=config("    - geoip: {source: '[client][ip]'}\n"))
    assert r.returncode == 2
    assert "pipeline.filters[0] (geoip): no 'database': sluice ships no GeoLite2 database" \
        in r.stderr
    r = run(tmp_path, "x\n", config=config(
        f"    - geoip: {{source: '[client][ip]', database: '{d}/Broken.mmdb'}}\n"))
    assert r.returncode == 2
    assert f"cannot use '{d}/Broken.mmdb': " in r.stderr


def test_both_filters_keep_the_partial_parse(start_agg, tmp_path):
    """useragent and geoip declare the root keys they touch, so the members they do
    not (spelled as a re-serialisation would not: "\\/", 1.50) are copied as sent."""
    from test_passthrough import base_config, lines, send
    d = make_dbs(tmp_path)
    filters = ("  filters:\n"
               "    - useragent: {source: '[user_agent][original]'}\n"
               f"    - geoip: {{source: '[source][ip]', database: '{d}/City.mmdb',"
               " fields: [city_name, country_code2]}\n")
    text = base_config(tmp_path).replace("  filters: []\n", filters)
    text = text.replace("events-%{+yyyy.MM.dd}.ndjson", "x.ndjson")
    a = start_agg(tmp_path, text)
    event = (b'{"message":"a\\/b","n":1.50,"user_agent":{"original":"curl\\/8.4.0"},'
             b'"source":{"ip":"81.2.69.160"},"z":[1.50]}')
    send(a.port, [event])
    send(a.port, [event])  # after the first is acknowledged: from the cache
    got = lines(os.path.join(tmp_path, "out", "x.ndjson"))
    assert got == 2 * [
        b'{"message":"a\\/b","n":1.50,"user_agent":{"original":"curl/8.4.0","name":"curl",'
        b'"version":"8.4.0","os":{"name":"Other","full":"Other"},"device":{"name":"Other"}},'
        b'"source":{"ip":"81.2.69.160","geo":{"city_name":"London","country_iso_code":"GB"}},'
        b'"z":[1.50],"@metadata":{"filter":{"user_agent":{"version":{"major":"8","minor":"4",'
        b'"patch":"0"}}}}}']
    m = a.metrics()
    assert m['sluice_aggregator_filter_events_total{filter="useragent",result="ok"}'] == 2
    assert m['sluice_aggregator_filter_events_total{filter="geoip",result="ok"}'] == 2
    assert m['sluice_aggregator_useragent_cache_total{filter="useragent",result="miss"}'] == 1
    assert m['sluice_aggregator_useragent_cache_total{filter="useragent",result="hit"}'] == 1


def test_reload_opens_the_replaced_database(start_agg, tmp_path):
    """SIGHUP builds a new pipeline, which opens the database file anew: a file renamed
    over the old one is used from then on (here an ASN database over the City one)."""
    import signal

    from conftest import wait_for
    from test_passthrough import base_config, lines, send
    d = make_dbs(tmp_path)
    db = os.path.join(tmp_path, "geo.mmdb")
    os.link(os.path.join(d, "City.mmdb"), db)
    filters = ("  filters:\n"
               f"    - geoip: {{source: '[client][ip]', database: '{db}',"
               " fields: [ip, country_code2, autonomous_system_number]}\n")
    text = base_config(tmp_path).replace("  filters: []\n", filters)
    text = text.replace("events-%{+yyyy.MM.dd}.ndjson", "x.ndjson")
    a = start_agg(tmp_path, text)
    send(a.port, [b'{"client":{"ip":"1.128.0.1"}}', b'{"client":{"ip":"81.2.69.160"}}'])
    os.replace(os.path.join(d, "ASN.mmdb"), db)
    a.proc.send(signal.SIGHUP)
    wait_for(lambda: a.metric('sluice_aggregator_reloads_total{result="ok"}') == 1,
             what="reload ok")
    send(a.port, [b'{"client":{"ip":"1.128.0.1"}}'])
    got = [json.loads(x) for x in lines(os.path.join(tmp_path, "out", "x.ndjson"))]
    assert got == [
        {"client": {"ip": "1.128.0.1"}, "tags": ["_geoip_lookup_failure"]},
        {"client": {"ip": "81.2.69.160", "geo": {"country_iso_code": "GB"}}},
        {"client": {"ip": "1.128.0.1", "as": {"number": 1221}}},
    ]

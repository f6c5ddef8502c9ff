"""`make install` puts the configs where the daemons and the units look (docs/install.md):
/etc/sluice whatever PREFIX is, the units' paths rewritten for PREFIX and SYSCONFDIR, and a
site's edited config kept on a second install (the new example goes beside it)."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def install(dest, *args):
    p = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", *args], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout


def test_configs_land_where_the_daemons_look(tmp_path):
    dest = tmp_path / "root"
    install(dest, "PREFIX=/usr")
    assert (dest / "usr/bin/sluice-shipper").is_file()
    assert os.access(dest / "usr/bin/sluice-aggregator", os.X_OK)
    for name in ("shipper.yml", "aggregator.yml"):
        with open(dest / "etc/sluice" / name) as got, open(os.path.join(ROOT, "config", name)) as want:
            assert got.read() == want.read()
    assert (dest / "etc/sluice/patterns/legacy/httpd").is_file()
    assert (dest / "etc/sluice/patterns/ecs-v1/httpd").is_file()
    unit = (dest / "usr/lib/systemd/system/sluice-shipper.service").read_text()
    assert "ExecStart=/usr/bin/sluice-shipper -c /etc/sluice/shipper.yml" in unit
    settings = [line for line in unit.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "/usr/local" in line]
    assert (dest / "usr/lib/sysusers.d/sluice.conf").is_file()


def test_a_second_install_keeps_the_sites_config(tmp_path):
    dest = tmp_path / "root"
    install(dest)
    mine = dest / "etc/sluice/shipper.yml"
    mine.write_text("# edited by the site\n")
    install(dest)
    assert mine.read_text() == "# edited by the site\n"
    with open(os.path.join(ROOT, "config/shipper.yml")) as want:
        assert (dest / "etc/sluice/shipper.yml.example").read_text() == want.read()


def test_sysconfdir_moves_configs_and_units_together(tmp_path):
    dest = tmp_path / "root"
    install(dest, "PREFIX=/opt/sluice", "SYSCONFDIR=/opt/sluice/etc")
    assert (dest / "opt/sluice/etc/sluice/aggregator.yml").is_file()
    unit = (dest / "opt/sluice/lib/systemd/system/sluice-aggregator.service").read_text()
    assert ("ExecStart=/opt/sluice/bin/sluice-aggregator -c /opt/sluice/etc/sluice/aggregator.yml"
            in unit)

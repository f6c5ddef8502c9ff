#!/bin/sh
# certbot deploy hook for sluice: after a renewal, install the new certificate
# and key where sluice reads them and reload the daemons with SIGHUP.
#
#   certbot renew --deploy-hook /usr/local/share/sluice/sluice-deploy-hook.sh
#   (or copy it to /etc/letsencrypt/renewal-hooks/deploy/)
#
# certbot sets RENEWED_LINEAGE (/etc/letsencrypt/live/NAME). Settings, from the
# environment or /etc/default/sluice-tls:
#   SLUICE_TLS_DIR    where sluice reads TLS files        (default /etc/sluice/tls)
#   SLUICE_TLS_NAME   file stem: NAME.crt and NAME.key     (default aggregator)
#   SLUICE_TLS_OWNER  owner:group of the installed files   (default root:sluice; the key is 0640)
#   SLUICE_UNITS      systemd units to reload              (default sluice-aggregator)
#   SLUICE_RELOAD_CMD reload command, given the unit name  (default: systemctl try-reload-or-restart)
#
# Each file is written beside its target and renamed over it, so sluice never
# reads a half-written certificate, and key and certificate change together
# before the reload. On SIGHUP sluice loads the new pair for new TLS handshakes;
# established Lumberjack connections are not dropped (see docs/deploy.md).
set -eu

if [ -r /etc/default/sluice-tls ]; then
    . /etc/default/sluice-tls
fi
: "${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set: run me as a certbot --deploy-hook}"
dir="${SLUICE_TLS_DIR:-/etc/sluice/tls}"
name="${SLUICE_TLS_NAME:-aggregator}"
owner="${SLUICE_TLS_OWNER:-root:sluice}"
units="${SLUICE_UNITS:-sluice-aggregator}"

for f in fullchain.pem privkey.pem; do
    if [ ! -s "$RENEWED_LINEAGE/$f" ]; then
        echo "sluice-deploy-hook: $RENEWED_LINEAGE/$f is missing or empty" >&2
        exit 1
    fi
done

install -d -m 0750 "$dir"
install -m 0644 "$RENEWED_LINEAGE/fullchain.pem" "$dir/.$name.crt.new"
install -m 0640 "$RENEWED_LINEAGE/privkey.pem" "$dir/.$name.key.new"
chown "$owner" "$dir/.$name.crt.new" "$dir/.$name.key.new"
mv -f "$dir/.$name.key.new" "$dir/$name.key"
mv -f "$dir/.$name.crt.new" "$dir/$name.crt"

for unit in $units; do
    if [ -n "${SLUICE_RELOAD_CMD:-}" ]; then
        $SLUICE_RELOAD_CMD "$unit"
    else
        systemctl try-reload-or-restart "$unit"
    fi
    echo "sluice-deploy-hook: installed $dir/$name.crt and reloaded $unit"
done

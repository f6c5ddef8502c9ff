#!/bin/sh
# The docker-compose demo application: writes Apache combined-format access log
# lines to /var/log/app/access.log (a volume shared with its shipper sidecar),
# DEMO_RATE lines per second (default 5). Runs under busybox sh.
set -eu
dir="${DEMO_LOG_DIR:-/var/log/app}"
rate="${DEMO_RATE:-5}"
mkdir -p "$dir"
i=0
paths="/ /index.html /api/items /api/items/42 /login /static/app.js /missing"
codes="200 200 200 200 304 404 500"
while :; do
    n=0
    while [ "$n" -lt "$rate" ]; do
        i=$((i + 1)); n=$((n + 1))
        p=$(echo $paths | cut -d' ' -f$((i % 7 + 1)))
        c=$(echo $codes | cut -d' ' -f$((i % 7 + 1)))
        printf '10.0.%d.%d - - [%s] "GET %s HTTP/1.1" %s %d "-" "sluice-demo/1.0"\n' \
            $((i % 4)) $((i % 250 + 1)) "$(date -u '+%d/%b/%Y:%H:%M:%S +0000')" "$p" "$c" $((i % 5000 + 100)) \
            >> "$dir/access.log"
    done
    sleep 1
done

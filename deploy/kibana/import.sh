#!/usr/bin/env bash
# Imports the sluice data view (logs-* on @timestamp), saved search,
# visualizations and dashboard into Kibana.
#
#   deploy/kibana/import.sh [KIBANA_URL]                  # default $KIBANA_URL or http://127.0.0.1:5601
#
# Auth: KIBANA_USERNAME + KIBANA_PASSWORD, or KIBANA_API_KEY. KIBANA_SPACE imports
# into a space other than the default one. Idempotent (overwrite=true): re-running
# it resets the objects to this file's version.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
kb="${1:-${KIBANA_URL:-http://127.0.0.1:5601}}"
objects="${SLUICE_SAVED_OBJECTS:-$here/sluice-saved-objects.ndjson}"
prefix=""
if [ -n "${KIBANA_SPACE:-}" ]; then
    prefix="/s/${KIBANA_SPACE}"
fi

args=(-sS --retry 10 --retry-delay 3 --retry-connrefused --max-time 60
      -H 'kbn-xsrf: true')
if [ -n "${KIBANA_API_KEY:-}" ]; then
    args+=(-H "Authorization: ApiKey ${KIBANA_API_KEY}")
elif [ -n "${KIBANA_USERNAME:-}" ]; then
    args+=(-u "${KIBANA_USERNAME}:${KIBANA_PASSWORD:-}")
fi

echo "importing $objects into $kb${prefix}"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
code="$(curl "${args[@]}" -o "$body" -w '%{http_code}' \
        -X POST "$kb${prefix}/api/saved_objects/_import?overwrite=true" \
        --form "file=@${objects};type=application/ndjson")"
cat "$body"; echo
if [ "$code" != 200 ] || ! grep -q '"success":true' "$body"; then
    echo "import failed (HTTP $code)" >&2
    exit 1
fi

#!/usr/bin/env bash
# Installs (or updates) the sluice index template in Elasticsearch.
#
#   deploy/elasticsearch/apply-template.sh [ES_URL]        # default $ES_URL or http://127.0.0.1:9200
#
# Auth, when the cluster has security on: ES_API_KEY (the base64 "id:key"), or
# ES_USERNAME + ES_PASSWORD. ES_CA names a CA file for https. Idempotent: PUT
# replaces the template; existing indices keep their mappings, new daily
# indices get the new ones. Run it before the first event is indexed (the
# docker-compose stack does, in its es-setup service).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
es="${1:-${ES_URL:-http://127.0.0.1:9200}}"
template="${SLUICE_TEMPLATE:-$here/index-template.json}"
name="${SLUICE_TEMPLATE_NAME:-sluice}"

# Plain -sS, not --fail-with-body: the curl in older images predates it; the status
# code is checked below instead.
args=(-sS --retry 5 --retry-delay 2 --retry-connrefused --max-time 30
      -H 'Content-Type: application/json')
if [ -n "${ES_API_KEY:-}" ]; then
    args+=(-H "Authorization: ApiKey ${ES_API_KEY}")
elif [ -n "${ES_USERNAME:-}" ]; then
    args+=(-u "${ES_USERNAME}:${ES_PASSWORD:-}")
fi
if [ -n "${ES_CA:-}" ]; then
    args+=(--cacert "$ES_CA")
fi

echo "installing index template '$name' from $template into $es"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
code="$(curl "${args[@]}" -o "$body" -w '%{http_code}' -X PUT "$es/_index_template/$name" \
        --data-binary "@$template")"
cat "$body"; echo
if [ "$code" != 200 ]; then
    echo "Elasticsearch answered HTTP $code" >&2
    exit 1
fi

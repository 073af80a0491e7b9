#!/bin/sh
# Entrypoint of the monitoring profile's Alertmanager (docker-compose.yml): writes
# alertmanager.yml out with KRTC_ALERT_WEBHOOK_URL in it (Alertmanager's configuration reads no
# environment variable), then runs Alertmanager on the result with this script's arguments.
#
#   ALERTMANAGER_TEMPLATE  the template   [/etc/alertmanager/alertmanager.yml]
#   ALERTMANAGER_CONFIG    the result, mode 0600: it holds the URL   [/alertmanager/alertmanager.yml]
#   ALERTMANAGER_BIN       the program    [/bin/alertmanager]
#
# `entrypoint.sh --render-only` writes the result and exits (to check it with amtool).
set -eu

template=${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}
config=${ALERTMANAGER_CONFIG:-/alertmanager/alertmanager.yml}
url=${KRTC_ALERT_WEBHOOK_URL:-}
newline='
'

umask 077
case $url in
  "")
    echo "alertmanager: KRTC_ALERT_WEBHOOK_URL is not set: alerts show on port 9093 and notify nobody" >&2
    # The receiver keeps its name and no webhook (webhook_configs is the file's last entry).
    sed '/^    webhook_configs:/,$d' "$template" > "$config"
    ;;
  *'"'* | *\\* | *"$newline"*)
    echo "alertmanager: KRTC_ALERT_WEBHOOK_URL must not hold quotes, backslashes or newlines" >&2
    exit 1
    ;;
  http://* | https://*)
    # Escaped for sed's replacement: & (a query string), the | delimiter and backslashes.
    escaped=$(printf '%s' "$url" | sed 's/[&|\\]/\\&/g')
    sed "s|\${KRTC_ALERT_WEBHOOK_URL}|$escaped|" "$template" > "$config"
    ;;
  *)
    echo "alertmanager: KRTC_ALERT_WEBHOOK_URL must be an http:// or https:// URL" >&2
    exit 1
    ;;
esac

if [ "${1:-}" = "--render-only" ]; then
  exit 0
fi
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$config" "$@"

#!/usr/bin/env bash
# Rewrite deploy/cloudflare-ips.txt from Cloudflare's published lists
# (https://www.cloudflare.com/ips-v4 and /ips-v6). Refuses to write anything
# when a download fails or a line is not a CIDR, so a bad fetch never empties
# the allow-list.
set -euo pipefail

out="${1:-$(dirname "$0")/cloudflare-ips.txt}"
tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.v4" "$tmp.v6"' EXIT

fetch() {
  curl --fail --silent --show-error --location --proto '=https' --max-time 30 "$1"
}

fetch https://www.cloudflare.com/ips-v4 | tr -d '\r' | sed '/^[[:space:]]*$/d' > "$tmp.v4"
fetch https://www.cloudflare.com/ips-v6 | tr -d '\r' | sed '/^[[:space:]]*$/d' > "$tmp.v6"

grep -Evq '^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$' "$tmp.v4" \
  && { echo "refresh-cloudflare-ips: unexpected line in ips-v4" >&2; exit 1; }
grep -Evq '^[0-9a-fA-F:]+/[0-9]{1,3}$' "$tmp.v6" \
  && { echo "refresh-cloudflare-ips: unexpected line in ips-v6" >&2; exit 1; }
[ -s "$tmp.v4" ] && [ -s "$tmp.v6" ] \
  || { echo "refresh-cloudflare-ips: an empty list was downloaded" >&2; exit 1; }

{
  echo "# Cloudflare's published edge address ranges (fetched $(date -u +%Y-%m-%d) from"
  echo "# https://www.cloudflare.com/ips-v4 and /ips-v6 by deploy/refresh-cloudflare-ips.sh)."
  echo "# Used for an origin that is reached directly (not through a tunnel) and should accept only Cloudflare."
  echo "# IPv4"
  cat "$tmp.v4"
  echo "# IPv6"
  cat "$tmp.v6"
} > "$tmp"

chmod 0644 "$tmp"
mv "$tmp" "$out"
echo "wrote $out ($(wc -l < "$tmp.v4") IPv4 and $(wc -l < "$tmp.v6") IPv6 ranges)"

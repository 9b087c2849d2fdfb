#!/usr/bin/env bash
# Fetches the IP databases that name external endpoints (AS number and name,
# country: package ipdb) from the npm registry at a pinned version and caches
# them where flowlog looks for them by default (--ipdb-dir). Idempotent: does
# nothing when every file is cached. Prints the directory.
#   @ip-location-db/geo-whois-asn-country-mmdb  country, MMDB  (CC0-1.0)
#   @ip-location-db/asn                         AS, CSV ranges (CC BY 4.0: RouteViews, DB-IP, NRO)
set -euo pipefail
VERSION=2.3.2026061719 # keep in step with ipdb.Version
dir="${XDG_CACHE_HOME:-$HOME/.cache}/flowlog/ipdb/$VERSION"
files=(geo-whois-asn-country.mmdb asn-ipv4.csv asn-ipv6.csv)
have=1
for f in "${files[@]}"; do [ -f "$dir/$f" ] || have=0; done
if [ "$have" = 1 ]; then echo "$dir"; exit 0; fi
command -v npm >/dev/null || { echo "fetch-ipdb: npm is needed to fetch @ip-location-db/*" >&2; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-ipdb: downloading @ip-location-db/geo-whois-asn-country-mmdb and @ip-location-db/asn @$VERSION (~26 MB) ..." >&2
(cd "$work" && npm pack --silent "@ip-location-db/geo-whois-asn-country-mmdb@$VERSION" "@ip-location-db/asn@$VERSION" >/dev/null)
mkdir "$work/country" "$work/asn"
tar -xzf "$work/ip-location-db-geo-whois-asn-country-mmdb-$VERSION.tgz" -C "$work/country" \
  package/geo-whois-asn-country.mmdb package/README.md
tar -xzf "$work/ip-location-db-asn-$VERSION.tgz" -C "$work/asn" \
  package/asn-ipv4.csv package/asn-ipv6.csv package/DBIP-LICENSE package/ROUTEVIEWS-LICENSE package/NRO_LICENSE package/MODIFICATIONS
# The licence texts travel with the data (CC BY 4.0 asks for attribution).
for f in DBIP-LICENSE ROUTEVIEWS-LICENSE NRO_LICENSE MODIFICATIONS; do mv "$work/asn/package/$f" "$dir/asn-$f"; done
mv "$work/country/package/README.md" "$dir/geo-whois-asn-country-README.md"
# Data files last, each by rename: a cache with all three is complete.
for f in asn-ipv4.csv asn-ipv6.csv; do mv "$work/asn/package/$f" "$dir/$f"; done
mv "$work/country/package/geo-whois-asn-country.mmdb" "$dir/geo-whois-asn-country.mmdb"
echo "$dir"

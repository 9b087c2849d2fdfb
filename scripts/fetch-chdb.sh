#!/usr/bin/env bash
# Fetches the embedded ClickHouse engine (libchdb.so, ~560 MB) from the npm
# registry package @chdb/lib-linux-x64-gnu at a pinned version and caches it
# where flowlog looks for it by default. Idempotent: does nothing when the
# library is already cached. Prints the library's path.
set -euo pipefail
VERSION=26.5.3 # keep in step with store/chdb.LibVersion
cache="${XDG_CACHE_HOME:-$HOME/.cache}/flowlog/chdb/$VERSION"
lib="$cache/libchdb.so"
if [ -n "${FLOWLOG_CHDB_LIB:-}" ] && [ -f "$FLOWLOG_CHDB_LIB" ]; then
  echo "$FLOWLOG_CHDB_LIB"; exit 0
fi
if [ -f "$lib" ]; then echo "$lib"; exit 0; fi
command -v npm >/dev/null || { echo "fetch-chdb: npm is needed to fetch @chdb/lib-linux-x64-gnu" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-chdb: downloading @chdb/lib-linux-x64-gnu@$VERSION (~170 MB) ..." >&2
(cd "$work" && npm pack --silent "@chdb/lib-linux-x64-gnu@$VERSION" >/dev/null)
tar -xzf "$work"/chdb-lib-linux-x64-gnu-"$VERSION".tgz -C "$work" package/libchdb.so
mv "$work/package/libchdb.so" "$lib.part" && mv "$lib.part" "$lib"
echo "$lib"

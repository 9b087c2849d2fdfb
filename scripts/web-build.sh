#!/usr/bin/env bash
# Builds the web page (web/ → web/dist, embedded into the binary by package
# web). Idempotent: `npm ci` only when node_modules does not match
# package-lock.json, `npm run build` only when a source is newer than the
# build. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/../web"

sources=(index.html src package.json package-lock.json vite.config.ts tsconfig.json)

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  if [ -f dist/index.html ] && [ -z "$(find "${sources[@]}" -newer dist/index.html -print -quit)" ]; then
    echo "web-build: node/npm not found; keeping the existing build" >&2
    exit 0
  fi
  echo "web-build: node and npm are needed to build the web page (web/)" >&2
  exit 1
fi

# node_modules matches the lockfile when the stamp holds the lockfile's hash.
stamp=node_modules/.flowlog-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "web-build: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" >"$stamp"
fi

if [ -f dist/index.html ] && [ -z "$(find "${sources[@]}" -newer dist/index.html -print -quit)" ]; then
  exit 0
fi
echo "web-build: npm run build" >&2
npm run --silent build >&2
# Vite keeps file times of what it writes; make index.html the newest so the
# freshness check above holds.
touch dist/index.html

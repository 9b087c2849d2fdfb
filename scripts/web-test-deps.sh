#!/usr/bin/env bash
# Installs what the browser test (e2e/web_e2e_test.go) needs beyond
# web/node_modules (playwright-core, from `npm ci` in web-build.sh): Debian's
# chromium. Idempotent; does nothing when it is there or when not root (the
# test then skips, saying why). FLOWLOG_CHROMIUM names another browser.
set -euo pipefail
[ -n "${FLOWLOG_CHROMIUM:-}" ] && [ -x "${FLOWLOG_CHROMIUM}" ] && exit 0
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "web-test-deps: /usr/bin/chromium missing and not root; the browser test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium </dev/null >/dev/null 2>&1 ||
  { apt-get update -q </dev/null >/dev/null && apt-get install -y -q chromium </dev/null >/dev/null; }
echo "web-test-deps: installed chromium" >&2

#!/usr/bin/env bash
# Installs what the real-kernel tests need (nftables, iproute2, conntrack-tools) when missing.
# Idempotent; does nothing when everything is there or when not root (those
# tests then skip, saying why).
set -euo pipefail
missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
command -v conntrack >/dev/null || missing+=(conntrack)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test-deps: ${missing[*]} missing and not root; namespace tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" </dev/null >/dev/null 2>&1 ||
  { apt-get update -q </dev/null >/dev/null && apt-get install -y -q "${missing[@]}" </dev/null >/dev/null; }
echo "test-deps: installed ${missing[*]}" >&2

#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (FUZZTIME,
# default 10s): a smoke run on top of the seed corpora that `go test` replays
# anyway. Targets are found by name (func FuzzX in *_test.go), so new ones
# join without editing this script. A failure leaves its input under the
# package's testdata/fuzz/FuzzX/ and fails the script; commit that file to
# keep it as a regression seed.
#
#   scripts/fuzz-short.sh                   # every target, 10s each
#   FUZZTIME=1m scripts/fuzz-short.sh       # longer
#   scripts/fuzz-short.sh ./ingest/         # only the targets of these packages
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

# "dir<TAB>FuzzName" for each target, in a stable order.
mapfile -t targets < <(
  for p in "${pkgs[@]}"; do
    go list -f '{{.Dir}}' "$p"
  done | sort -u | while read -r dir; do
    { grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null || true; } |
      sed 's/^func \(Fuzz[A-Za-z0-9_]*\)(/\1/' | sort -u | sed "s|^|$dir\t|"
  done
)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-short: no fuzz targets found" >&2
  exit 1
fi

failed=()
for t in "${targets[@]}"; do
  dir=${t%%$'\t'*}
  name=${t#*$'\t'}
  rel=./${dir#"$PWD"/}
  echo "fuzz-short: $rel $name for $fuzztime" >&2
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$rel"; then
    failed+=("$rel $name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz-short: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz-short: ${#targets[@]} targets passed" >&2

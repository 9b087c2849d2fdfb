#!/usr/bin/env bash
# Regenerates proto/flow/*.pb.go from proto/flow/flow.proto with pinned
# generators (buf compiles the .proto; no system protoc is needed).
set -euo pipefail
cd "$(dirname "$0")/../proto"
BUF_VERSION=v1.75.0
go run "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}" generate

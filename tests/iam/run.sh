#!/usr/bin/env bash
# Offline IAM policy proofs for Ferry's plans (see simulate.test.mjs).
# Uses FERRY_BIN if set, otherwise builds target/debug/ferry. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
here="$(pwd)"
repo="$(cd ../.. && pwd)"

if [[ ! -d node_modules || node_modules -ot package-lock.json ]]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi
# `--install-only`: just the packages (the Rust grant tests call check-live-policies.mjs).
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi

if [[ -z "${FERRY_BIN:-}" ]]; then
  (cd "$repo" && cargo build -q -p ferry-cli)
  export FERRY_BIN="$repo/target/debug/ferry"
fi

cd "$here"
node --test

#!/usr/bin/env bash
# Installs the gateway's packages (npm ci) and runs its tests (node --test).
# `--install-only`: just the packages (for a Rust test harness that spawns gateway.mjs).
# moto_server comes from $FERRY_MOTO_SERVER or <repo>/.venv/bin/moto_server (scripts/setup-python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ ! -d node_modules || node_modules -ot package-lock.json ]]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi
node --test

#!/usr/bin/env bash
# Makes sure the real components the tests use are here and running (DESIGN.md §7).
set -euo pipefail
say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "error: PostgreSQL is not reachable on 127.0.0.1:5432; start it and retry" >&2; exit 1; }
fi

# Real bubblewrap for shell rehearsals (docs/sandbox.md): Debian's package, 0.8 or later.
command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap

# systemd-analyze for the deploy test that verifies the shipped unit (deploy/interlock.service).
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd

# Real MCP servers from npm for the MCP proxy tests (installed once into .interlock/npm).
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -d .interlock/npm/node_modules/@modelcontextprotocol/server-filesystem ] || \
   [ ! -d .interlock/npm/node_modules/@modelcontextprotocol/server-everything ]; then
  say "installing the MCP servers used by the tests (npm)"
  mkdir -p .interlock/npm
  npm install --silent --no-audit --no-fund --prefix .interlock/npm \
      @modelcontextprotocol/server-filesystem @modelcontextprotocol/server-everything >/dev/null
fi

# Real Chromium for the console's browser tests (docs/console.md): Debian's package, driven by
# Playwright through executable_path; never `playwright install`.
command -v chromium >/dev/null 2>&1 || apt_install chromium

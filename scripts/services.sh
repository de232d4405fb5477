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

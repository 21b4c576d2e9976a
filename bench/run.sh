#!/usr/bin/env bash
# Re-runs the benchmark: installs what it needs, builds the release binary, and
# runs bench/bench.py on SQLite and the local PostgreSQL. Figures go to the
# terminal and, for a full run, to the top of BENCHMARKS.md.
#
#   bash bench/run.sh            # 100,000 students, 1,000,000 assignments
#   bash bench/run.sh --smoke    # 1,000 assignments, 100 due: exact counts only (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
[ -x /usr/sbin/smtp-sink ] || missing="$missing postfix"   # smtp-sink and smtp-source
[ -x /usr/bin/time ] || missing="$missing time"             # GNU time, for peak RSS
if [ -n "$missing" ]; then
  echo "bench: installing$missing (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "bench: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export PATH="$PATH:/usr/sbin"
if [ ! -x target/release/reminders ] || [ -n "$(find src migrations Cargo.toml Cargo.lock -newer target/release/reminders -print -quit)" ]; then
  echo "bench: building the release binary (a few minutes on 2 cores the first time, dependencies included; then only what changed)" >&2
fi
cargo build --release --quiet
exec python3 bench/bench.py "$@"

#!/usr/bin/env bash
# The whole test suite on a fresh machine (Debian or Ubuntu, with Rust): it
# installs and starts what the tests need, then runs every test on SQLite,
# PostgreSQL and PostgreSQL behind PgBouncer, the bounce reader's fuzz test
# and the benchmark's smoke size. CI runs exactly this (.ci/run).
#
# `cargo test` alone stays the quick loop: it runs the SQLite half and says
# which halves it skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
phase_started=$SECONDS
phase() {
  if [ -n "${phase_name:-}" ]; then
    echo "== $phase_name: $((SECONDS - phase_started)) s" >&2
  fi
  phase_name="$1"
  phase_started=$SECONDS
  echo >&2
  echo "== $phase_name" >&2
}
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

phase "system packages"
# libpq and SQLite are compiled in, against the system OpenSSL; the
# benchmark's smoke run needs Postfix's smtp-sink and smtp-source (and the
# Postfix tests, Postfix itself); the pooler tests need PgBouncer; the OAuth
# and DKIM tests make RSA keys with openssl; the mail tests check messages
# with the system Python (a strict MIME parse, and dkimpy); the erasure test
# reads a full dump of each database (sqlite3, pg_dump); the preferences
# page's tests drive headless Chromium through chromedriver, curl, and nginx
# with fcgiwrap (the README's lines).
missing=""
for package in libssl-dev pkg-config postfix time pgbouncer openssl python3 python3-dkim sqlite3 postgresql systemd chromium chromium-driver curl nginx fcgiwrap; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  echo "installing$missing" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq $missing
else
  echo "all present" >&2
fi

phase "PostgreSQL on 127.0.0.1:5432"
cluster_version=$(ls /etc/postgresql | sort -n | tail -1)
hba=/etc/postgresql/$cluster_version/main/pg_hba.conf
# The tests connect as postgres over TCP without a password: trust loopback
# (a fresh install asks for one).
if ! as_root grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
  echo "trusting loopback connections in $hba" >&2
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main reload 2>/dev/null || true
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL $cluster_version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"

phase "PgBouncer (transaction mode) on 127.0.0.1:6432"
bash .ci/pgbouncer.sh
# Started for the tests, stopped after them, whatever their result.
stop_pgbouncer() {
  if [ -f target/pgbouncer/pgbouncer.pid ]; then
    kill "$(cat target/pgbouncer/pgbouncer.pid)" 2>/dev/null || true
  fi
}
trap stop_pgbouncer EXIT

phase "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

phase "tests: SQLite, PostgreSQL, PostgreSQL behind PgBouncer"
# With TEST_DATABASE_URL set, every PostgreSQL test runs against a fresh
# database of its own, or fails: it is never skipped.
export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
export TEST_PGBOUNCER_URL=postgres://postgres@127.0.0.1:6432/
mkdir -p target
cargo test 2>&1 | tee target/test.log
if grep -Eq "test result: .* [1-9][0-9]* ignored" target/test.log; then
  echo "some tests were ignored: every half must run here" >&2
  exit 1
fi

phase "the bounce reader and the feed reader against mutated and random input (60 s, side by side)"
BOUNCES_FUZZ_SECONDS=60 FEEDS_FUZZ_SECONDS=60 cargo test --bin reminders fuzz::

phase "the benchmark, small: exact counts, not speed"
bash bench/run.sh --smoke

phase "done"
echo "all tests and the benchmark smoke run passed on SQLite, PostgreSQL and PostgreSQL behind PgBouncer, in $((SECONDS - started)) s" >&2

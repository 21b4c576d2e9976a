#!/usr/bin/env bash
# Starts PgBouncer on 127.0.0.1:6432 in front of the test PostgreSQL
# (127.0.0.1:5432, trust auth), in transaction mode, for the pooler tests.
# Its config, user list, pid file and log live in target/pgbouncer; a
# PgBouncer started here before is stopped first, so the config is current.
set -euo pipefail
cd "$(dirname "$0")/.."

port=6432
dir="$PWD/target/pgbouncer"
mkdir -p "$dir"

if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
  kill "$(cat "$dir/pgbouncer.pid")"
  for _ in $(seq 1 30); do kill -0 "$(cat "$dir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.2; done
fi

# Every test makes a database of its own: the wildcard passes any name on.
# With trust auth PgBouncer still wants the user listed in auth_file.
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 20
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
INI
echo '"postgres" ""' >"$dir/userlist.txt"

# Debian's PgBouncer refuses to run as root; it runs as postgres, which must
# be able to write its pid file and log.
if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$dir"
  pgbouncer -d -u postgres "$dir/pgbouncer.ini"
else
  pgbouncer -d "$dir/pgbouncer.ini"
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
pg_isready -h 127.0.0.1 -p "$port"

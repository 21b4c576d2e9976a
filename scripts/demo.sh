#!/usr/bin/env bash
# The quick start: build reminders and run it on the embedded SQLite default,
# in ./demo, with a sample student and assignment. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reminders="$PWD/target/release/reminders"
mkdir -p demo && cd demo
rm -f reminders.db reminders.db-wal reminders.db-shm

"$reminders" migrate
"$reminders" user add --email alice@example.com --name Alice --timezone America/Los_Angeles
due=$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)
"$reminders" assignment add --student alice@example.com --title "Problem set 1" --due "$due" \
  --metadata '{"course": "CS101"}'
"$reminders" assignment list

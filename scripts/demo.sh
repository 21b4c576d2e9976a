#!/usr/bin/env bash
# The quick start: build reminders and run the whole loop on the embedded SQLite
# default, in ./demo: a sample student and assignment, `send` into a file://
# outbox, and the message it wrote. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reminders="$PWD/target/release/reminders"
mkdir -p demo && cd demo
rm -rf reminders.db reminders.db-wal reminders.db-shm outbox

# No mail server needed: each message becomes an .eml file in ./outbox.
export SMTP_URL=file://outbox
export MAIL_FROM="Reminders <noreply@school.example>"

"$reminders" migrate
"$reminders" user add --email alice@example.com --name Alice --timezone America/Los_Angeles
due=$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)
"$reminders" assignment add --student alice@example.com --title "Problem set 1" --due "$due" \
  --metadata '{"course": "CS101"}'
"$reminders" due --unit hours --targets 24,2
"$reminders" send --unit hours --targets 24,2
echo
echo "== the reminder in ./demo/outbox =="
cat outbox/*.eml

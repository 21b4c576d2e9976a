#!/usr/bin/env bash
# The quick start: build reminders and run the whole loop on the embedded SQLite
# default, in ./demo: a sample student and assignment, `send` into a file://
# outbox, and the message it wrote. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "== $*"; }

step "building reminders (release; the first build takes a few minutes)"
cargo build --release
reminders="$PWD/target/release/reminders"
mkdir -p demo && cd demo
rm -rf reminders.db reminders.db-wal reminders.db-shm outbox

# No mail server needed: each message becomes an .eml file in ./outbox.
export SMTP_URL=file://outbox
export MAIL_FROM="Reminders <noreply@school.example>"

step "reminders migrate: create the SQLite database ./demo/reminders.db"
"$reminders" migrate
step "reminders user add: a student in Los Angeles"
"$reminders" user add --email alice@example.com --name Alice --timezone America/Los_Angeles
step "reminders assignment add: due in 24 hours"
due=$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)
"$reminders" assignment add --student alice@example.com --title "Problem set 1" --due "$due" \
  --metadata '{"course": "CS101"}'
step "reminders due: what is in the 24h and 2h windows now"
"$reminders" due --unit hours --targets 24,2
step "reminders send: schedule, claim and send it (into ./demo/outbox)"
"$reminders" send --unit hours --targets 24,2
step "the reminder it wrote: $(ls outbox)"
cat outbox/*.eml
step "to run reminders from anywhere, put the binary just built on PATH (no second build):"
echo "  sudo install -m 755 $reminders /usr/local/bin/reminders"

#!/usr/bin/env python3
"""Writes the benchmark's deterministic dataset (fixed seed) as CSV files.

users.csv:       email,name,timezone
assignments.csv: student,title,due,description,metadata

Assignments fall into three groups, by design of the benchmark:
  * HEAVY_COUNT due within 20 minutes of HEAVY_NOW + 24h (the 10,000-row window);
  * FLAT_COUNT due within 20 minutes of FLAT_NOW + 24h (the memory-flatness run);
  * the rest spread over a term, never inside any window that a run looks at,
    the overdue steps' windows behind each run's clock included (so an idle
    run with `--overdue` configured is idle too).
"""
import argparse
import csv
import random
from datetime import datetime, timedelta, timezone  # noqa: F401 (bench.py uses timedelta)

HEAVY_NOW = datetime(2030, 1, 15, 8, 0, tzinfo=timezone.utc)
FLAT_NOW = HEAVY_NOW + timedelta(days=7)
IDLE_NOW = HEAVY_NOW - timedelta(days=10)
# bench.py's `--overdue` steps, in hours: each looks that far behind a run's clock.
OVERDUE_STEPS = (2, 24, 72)
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "UTC"]


def busy(instant):
    """Whether an instant is near a window that some benchmark run reads."""
    for now in (HEAVY_NOW, FLAT_NOW, IDLE_NOW):
        for lead in (timedelta(hours=24), timedelta(hours=2), *(-timedelta(hours=n) for n in OVERDUE_STEPS)):
            if abs(instant - (now + lead)) < timedelta(hours=2):
                return True
    return False


def stamp(instant):
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--assignments", type=int, default=1_000_000)
    parser.add_argument("--heavy", type=int, default=10_000)
    parser.add_argument("--flat", type=int, default=100_000)
    parser.add_argument("--out", default=".")
    parser.add_argument("--seed", type=int, default=20300115)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with open(f"{args.out}/users.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["email", "name", "timezone"])
        for i in range(args.users):
            out.writerow([f"student{i}@bench.example", f"Student {i}", ZONES[i % len(ZONES)]])

    term_start = HEAVY_NOW - timedelta(days=60)
    term_seconds = int(timedelta(days=120).total_seconds())
    with open(f"{args.out}/assignments.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["student", "title", "due", "description", "metadata"])
        for i in range(args.assignments):
            student = f"student{i % args.users}@bench.example"
            if i < args.heavy:
                due = HEAVY_NOW + timedelta(hours=24, seconds=rng.randint(-1200, 1200))
            elif i < args.heavy + args.flat:
                due = FLAT_NOW + timedelta(hours=24, seconds=rng.randint(-1200, 1200))
            else:
                due = term_start + timedelta(seconds=rng.randrange(term_seconds))
                while busy(due):
                    due += timedelta(hours=6)
            metadata = '{"course": "C%d", "weight": %d}' % (i % 50, i % 5 + 1) if i % 3 == 0 else ""
            out.writerow([student, f"Assignment {i}", stamp(due), "", metadata])


if __name__ == "__main__":
    main()

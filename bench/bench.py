#!/usr/bin/env python3
"""The reminders benchmark: import, idle run, due query, heavy run against
Postfix's smtp-sink, the smtp-source ceiling, memory flatness and summary, on
SQLite and PostgreSQL. Started by bench/run.sh, which installs and builds."""
import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import atexit
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(__file__))
import generate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "reminders")
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
PG_DATABASE = "reminders_bench"
SINK_PORT = 2625
SLOW_PORT = 2626
SLOW_DELAY_MS = 20
# (--connections, messages): enough messages for a few seconds each.
SLOW_TRIALS = [(1, 50), (4, 160), (8, 640), (16, 640), (32, 2560)]
SLOW_TRIALS_SMOKE = [(1, 10), (4, 40)]
# Issue 34: these trials run again right after, against the slow server
# offering PIPELINING (the smoke run's keeps the pipelined path in CI).
PIPELINED_CONNECTIONS = (8, 32)
PIPELINED_CONNECTIONS_SMOKE = (4,)
IDLE_RUNS = 20
# Issue 31: the idle and heavy runs again with overdue steps configured.
OVERDUE = ["--overdue", ",".join(str(n) for n in generate.OVERDUE_STEPS)]
OVERDUE_FLAG = " ".join(OVERDUE)
# Issue 34: the idle run with every later feature configured as well: overdue
# steps, copies to guardians, a send window, and (in the data) five students
# with their own window, their guardians and a teacher. The window is open or
# closed in every zone of the data at IDLE_NOW with no opening or last open
# hour near it, so nothing moved is due: an opening brings the night's
# messages, which is work, not an idle run.
SEND_WINDOW = ["--send-window", "mon-fri 07:00-21:00; sat,sun 10:00-19:00"]
EVERY = OVERDUE + ["--escalate-after", "72"] + SEND_WINDOW
OWN_WINDOW = "mon-fri 15:00-20:00"
# Heavy runs per variant (plain, overdue), alternating, each on a fresh copy.
HEAVY_TRIALS = 3


def stamp(instant):
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def measure(args, env, stdout=subprocess.DEVNULL):
    """Runs the command; returns (wall seconds, peak RSS in MB, exit status).
    The RSS comes from GNU time: a child of this Python process would report
    Python's own pages too, which it shares until exec."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        started = time.perf_counter()
        process = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *args], env=env,
                                 stdout=stdout, stderr=subprocess.PIPE)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"`{' '.join(args)}` exited {process.returncode}: {process.stderr.decode()}")
        rss_kb = int(rss_file.read().strip().splitlines()[-1])
    return wall, rss_kb / 1024, process.returncode


def wall_ms(args, env, runs=IDLE_RUNS):
    """The median wall time of a short command, timed directly: GNU time's own
    fork and exec would add about 0.8 ms to each."""
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls) * 1000


def wall_ms_pair(plain, other, env, runs=IDLE_RUNS, name="overdue"):
    """Median wall times of two short commands, run alternately (the order
    flipping each round) so that whatever else the machine does falls on both."""
    walls = {"plain": [], name: []}
    order = [("plain", plain), (name, other)]
    for i in range(runs):
        for variant, args in (order if i % 2 == 0 else order[::-1]):
            started = time.perf_counter()
            subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            walls[variant].append(time.perf_counter() - started)
    return {name: sorted(w * 1000 for w in ws) for name, ws in walls.items()}


def due_count(args, env, reminder_type=None):
    """How many rows `due --format json` lists (of one reminder type, if given)."""
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    return sum(1 for row in rows if reminder_type is None or row["reminder_type"] == reminder_type)


class Sink:
    """Postfix's smtp-sink on loopback, counting what it accepts."""

    def __enter__(self):
        self.log = tempfile.TemporaryFile()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(["smtp-sink", "-c", *user, f"127.0.0.1:{SINK_PORT}", "1000"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.3)
        if self.process.poll() is not None:
            self.log.seek(0)
            raise SystemExit(f"smtp-sink did not start (is port {SINK_PORT} taken?): {self.log.read().decode()}")
        return self

    def __exit__(self, *_):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()

    def received(self):
        time.sleep(0.2)
        self.log.seek(0)
        counts = re.findall(rb"mesg=(\d+)", self.log.read())
        return int(counts[-1]) if counts else 0


class SlowServer:
    """bench/slow_smtp.py: waits SLOW_DELAY_MS before every reply (or every
    group of pipelined commands), as a distant relay does."""

    def __init__(self, pipelining):
        self.pipelining = pipelining

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "slow_smtp.py"),
                                         "--port", str(SLOW_PORT), "--delay-ms", str(SLOW_DELAY_MS)]
                                        + (["--pipelining"] if self.pipelining else []),
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *_):
        self.process.kill()
        self.process.wait()

    def received(self):
        """(messages, of them pipelined)."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate()
        words = out.split()
        return int(words[-3]), int(words[-1])


def slow_trial(fresh_database, data, connections, count, pipelining):
    """Messages a second against the slow server, on a fresh database holding
    only its due reminders; exact counts checked, pipelined groups included."""
    env = dict(os.environ, DATABASE_URL=fresh_database(), SMTP_URL=f"smtp://127.0.0.1:{SLOW_PORT}",
               MAIL_FROM="Reminders <noreply@bench.example>")
    env.pop("REMINDERS_TEMPLATES", None)
    for setup in (["migrate"], ["user", "import", os.path.join(data, "users.csv")],
                  ["assignment", "import", os.path.join(data, "assignments.csv")]):
        measure([BINARY, "-q", *setup], env)
    with SlowServer(pipelining) as server:
        wall, _, _ = measure([BINARY, "-q", "send", "--unit", "hours", "--targets", "24", "--connections",
                              str(connections), "--limit", str(count), "--now", stamp(generate.HEAVY_NOW)], env)
        received, pipelined = server.received()
    expected = (count, count if pipelining else 0)
    if (received, pipelined) != expected:
        raise SystemExit(f"slow server{' with PIPELINING' if pipelining else ''}: {connections} connections "
                         f"delivered {received} ({pipelined} pipelined), expected {expected[0]} ({expected[1]})")
    return count / wall


def slow_curve(fresh_database, data, trials, pipelined_connections):
    """The slow server's curve by --connections, and for some of them the same
    trial again right after against the server offering PIPELINING."""
    curve, pipelined = {}, {}
    for connections, count in trials:
        curve[connections] = slow_trial(fresh_database, data, connections, count, False)
        if connections in pipelined_connections:
            pipelined[connections] = slow_trial(fresh_database, data, connections, count, True)
    return curve, pipelined


def psql(sql, database="test"):
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True, text=True).stdout


def bench_backend(name, database_url, data, sizes, fresh_database, slow_data, copy_database):
    env = dict(os.environ, DATABASE_URL=database_url, SMTP_URL=f"smtp://127.0.0.1:{SINK_PORT}",
               MAIL_FROM="Reminders <noreply@bench.example>")
    env.pop("REMINDERS_TEMPLATES", None)
    r = {}
    measure([BINARY, "migrate"], env)
    wall, rss, _ = measure([BINARY, "user", "import", os.path.join(data, "users.csv")], env)
    r["users_import_s"], r["users_rows_s"] = wall, sizes["users"] / wall
    wall, rss, _ = measure([BINARY, "assignment", "import", os.path.join(data, "assignments.csv")], env)
    r["import_s"], r["import_rows_s"], r["import_rss_mb"] = wall, sizes["assignments"] / wall, rss

    idle = [BINARY, "send", "--unit", "hours", "--targets", "24,2", "--now", stamp(generate.IDLE_NOW)]
    # Interleaved with the same run given overdue steps, whose windows the
    # data keeps empty too (generate.busy): what configuring them costs.
    idle_walls = wall_ms_pair(idle, idle + OVERDUE, env)
    r["idle_ms"], r["idle_overdue_ms"] = (statistics.median(idle_walls[v]) for v in ("plain", "overdue"))
    r["idle_walls"] = idle_walls
    r["idle_rss_mb"] = statistics.median(measure(idle, env)[1] for _ in range(5))
    r["idle_overdue_rss_mb"] = statistics.median(measure(idle + OVERDUE, env)[1] for _ in range(5))
    r["idle_overdue_due_rows"] = due_count([BINARY, "due", "--unit", "hours", "--targets", "24,2", *OVERDUE,
                                            "--now", stamp(generate.IDLE_NOW), "--format", "json"], env)
    if name == "PostgreSQL":
        # The same over the local socket: no TLS (libpq's default `sslmode=prefer`
        # makes a TCP connection to a server with TLS negotiate it, 5-7 ms).
        r["idle_socket_ms"] = wall_ms(idle, dict(env, DATABASE_URL=database_url.replace(
            "127.0.0.1:5432", "%2Fvar%2Frun%2Fpostgresql")))

    due_args = [BINARY, "due", "--unit", "hours", "--targets", "24", "--now", stamp(generate.HEAVY_NOW),
                "--format", "json"]
    out = subprocess.run(due_args, env=env, check=True, capture_output=True, text=True).stdout
    r["due_rows"] = out.count('"assignment_id"')
    r["due_ms"] = wall_ms(due_args, env, runs=9)
    if name == "PostgreSQL":
        heavy_from = stamp(generate.HEAVY_NOW.replace() + (generate.timedelta(hours=24) - generate.timedelta(minutes=30)))
        heavy_to = stamp(generate.HEAVY_NOW + (generate.timedelta(hours=24) + generate.timedelta(minutes=30)))
        plan = psql(
            "EXPLAIN SELECT a.id, a.title, a.due_at, u.email, u.timezone, r.status FROM assignments a "
            "JOIN users u ON u.id = a.student_id LEFT JOIN reminders r ON r.assignment_id = a.id "
            f"AND r.reminder_type = '24h' WHERE a.due_at BETWEEN '{heavy_from}' AND '{heavy_to}' "
            "AND a.completed = false AND u.contact_opt_out = false ORDER BY a.due_at, a.id LIMIT 2000",
            PG_DATABASE)
        r["due_plan_indexed"] = "Index" in plan and "Seq Scan on assignments" not in plan
        r["due_plan"] = plan.strip().splitlines()

    # The overdue step's own window at scale: a day after the heavy window's
    # due times, its overdue-24h window holds exactly those assignments.
    r["overdue_due_rows"] = due_count(
        [BINARY, "due", "--unit", "hours", "--targets", "24", "--overdue", "24",
         "--now", stamp(generate.HEAVY_NOW + generate.timedelta(hours=48)), "--format", "json"], env, "overdue-24h")

    send = [BINARY, "send", "--unit", "hours", "--targets", "24,2", "--connections", "4"]
    # The heavy run, plain and with overdue steps, alternating, each on a
    # fresh copy of the loaded database (the copy's time is not counted).
    trials = {"plain": [], "overdue": []}
    for i in range(sizes["heavy_trials"]):
        order = [("plain", []), ("overdue", OVERDUE)]
        for variant, extra in (order if i % 2 == 0 else order[::-1]):
            copy_env = dict(env, DATABASE_URL=copy_database())
            with Sink() as sink:
                wall, rss, _ = measure(send + extra + ["--now", stamp(generate.HEAVY_NOW)], copy_env)
                trials[variant].append((wall, rss, sink.received()))
    copy_database(drop=True)
    r["heavy_trials"] = trials
    with Sink() as sink:
        wall, rss, _ = measure(send + ["--now", stamp(generate.HEAVY_NOW)], env)
        r["heavy_s"], r["heavy_rss_mb"], r["heavy_received"] = wall, rss, sink.received()
        r["heavy_msgs_s"] = sizes["heavy"] / wall
    with Sink() as sink:
        started = time.perf_counter()
        subprocess.run(["smtp-source", "-d", "-s", "4", "-m", str(sizes["heavy"]), f"127.0.0.1:{SINK_PORT}"],
                       check=True, capture_output=True)
        wall = time.perf_counter() - started
        r["ceiling_msgs_s"], r["ceiling_received"] = sizes["heavy"] / wall, sink.received()
    r["heavy_ratio"] = r["heavy_msgs_s"] / r["ceiling_msgs_s"]
    with Sink() as sink:
        wall, rss, _ = measure(send + ["--now", stamp(generate.FLAT_NOW)], env)
        r["flat_s"], r["flat_rss_mb"], r["flat_received"] = wall, rss, sink.received()
    r["flat_ratio"] = r["flat_rss_mb"] / r["heavy_rss_mb"]
    summary = [BINARY, "summary", "--now", stamp(generate.HEAVY_NOW), "--format", "json"]
    r["summary_s"] = measure(summary, env)[0]
    r["summary_plan_s"] = measure(summary + ["--send", "--dry-run"], env)[0]
    r["slow_curve"], r["slow_pipelined"] = slow_curve(fresh_database, slow_data, sizes["slow"], sizes["pipelined"])
    # Last, so that the students' own windows move nothing the runs above count.
    for i in range(5):
        student = f"student{i}@bench.example"
        measure([BINARY, "user", "set", student, "--send-window", OWN_WINDOW], env)
        measure([BINARY, "guardian", "add", "--student", student, "--email", f"guardian{i}@bench.example"], env)
    measure([BINARY, "teacher", "add", "--course", "C1", "--email", "teacher@bench.example"], env)
    every_walls = wall_ms_pair(idle, idle + EVERY, env, name="every")
    r["idle_every_ms"], r["idle_every_plain_ms"] = (statistics.median(every_walls[v]) for v in ("every", "plain"))
    r["idle_every_walls"] = every_walls
    r["idle_every_due_rows"] = due_count([BINARY, "due", "--unit", "hours", "--targets", "24,2", *OVERDUE, *SEND_WINDOW,
                                          "--now", stamp(generate.IDLE_NOW), "--format", "json"], env)
    return r


PG_SLOW_DATABASE = PG_DATABASE + "_slow"


def fresh_pg_database():
    psql(f"DROP DATABASE IF EXISTS {PG_SLOW_DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {PG_SLOW_DATABASE}")
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_SLOW_DATABASE


PG_COPY_DATABASE = PG_DATABASE + "_copy"


def copy_pg_database(drop=False):
    """A fresh copy of the loaded database (statistics included), or none."""
    psql(f"DROP DATABASE IF EXISTS {PG_COPY_DATABASE} WITH (FORCE)")
    if drop:
        return None
    psql(f"CREATE DATABASE {PG_COPY_DATABASE} TEMPLATE {PG_DATABASE}")
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_COPY_DATABASE


def copy_sqlite(path, drop=False):
    """A fresh copy of the loaded SQLite file (its WAL included, through the
    backup API), or none."""
    copy = path + ".copy"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(copy + suffix):
            os.remove(copy + suffix)
    if drop:
        return None
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return copy


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory_kb = int(f.readline().split()[1])
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GiB memory"


def table(results, sizes):
    names = list(results)
    rows = [
        ("users imported (rows/s)", lambda r: f"{sizes['users']:,} in {r['users_import_s']:.2f} s ({r['users_rows_s']:,.0f}/s)"),
        ("1. assignments imported (rows/s)", lambda r: f"{sizes['assignments']:,} in {r['import_s']:.1f} s ({r['import_rows_s']:,.0f}/s), {r['import_rss_mb']:.0f} MB"),
        ("2. idle run: median wall, RSS", lambda r: f"{r['idle_ms']:.1f} ms, {r['idle_rss_mb']:.1f} MB"
         + (f" ({r['idle_socket_ms']:.1f} ms over the local socket)" if "idle_socket_ms" in r else "")),
        (f"2b. idle run with `{OVERDUE_FLAG}`, interleaved with the plain one: median wall (p25–p75), RSS",
         lambda r: f"{r['idle_overdue_ms']:.1f} ms ({quartiles(r['idle_walls']['overdue'])}), {r['idle_overdue_rss_mb']:.1f} MB; "
         f"plain {r['idle_ms']:.1f} ms ({quartiles(r['idle_walls']['plain'])}): {r['idle_overdue_ms'] - r['idle_ms']:+.1f} ms"),
        ("2c. idle run with every later feature configured (see EVERY in bench.py), interleaved with the plain one on the same data: median wall (p25–p75)",
         lambda r: f"{r['idle_every_ms']:.1f} ms ({quartiles(r['idle_every_walls']['every'])}); "
         f"plain {r['idle_every_plain_ms']:.1f} ms ({quartiles(r['idle_every_walls']['plain'])}): "
         f"{r['idle_every_ms'] / r['idle_every_plain_ms'] - 1:+.0%}"),
        ("3. `due`, 24h window", lambda r: f"{r['due_rows']:,} rows in {r['due_ms']:.0f} ms" + (" (index scan)" if r.get("due_plan_indexed") else "")),
        ("4. heavy run", lambda r: f"{sizes['heavy']:,} in {r['heavy_s']:.2f} s = {r['heavy_msgs_s']:,.0f} msg/s, {r['heavy_rss_mb']:.1f} MB; sink got {r['heavy_received']:,}"),
        (f"4b. heavy run on fresh copies, plain vs `{OVERDUE_FLAG}` ({sizes['heavy_trials']} each, alternating): wall",
         lambda r: f"plain {trial_walls(r, 'plain')}, overdue {trial_walls(r, 'overdue')}: medians "
         f"{heavy_median(r, 'overdue') / heavy_median(r, 'plain') - 1:+.1%}; sink got {trial_received(r)}"),
        ("5. smtp-source -d -s 4 ceiling", lambda r: f"{r['ceiling_msgs_s']:,.0f} msg/s; heavy run = {r['heavy_ratio']:.0%} of it"),
        ("6. memory flatness", lambda r: f"{sizes['flat']:,} due: {r['flat_rss_mb']:.1f} MB in {r['flat_s']:.1f} s ({r['flat_ratio']:.2f}x the heavy run); sink got {r['flat_received']:,}"),
        ("7. `summary`, all students: display, `--send` planning", lambda r: f"{r['summary_s'] * 1000:.0f} ms, {r['summary_plan_s'] * 1000:.0f} ms"),
        (f"8. slow server ({SLOW_DELAY_MS} ms a reply): msg/s by `--connections`",
         slow_row),
        ("8b. the same server offering PIPELINING, each trial right after its row 8 trial: msg/s by `--connections`",
         pipelined_row),
    ]
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, render in rows:
        lines.append(f"| {label} | " + " | ".join(render(results[n]) for n in names) + " |")
    return "\n".join(lines)


def quartiles(walls):
    q = statistics.quantiles(walls, n=4)
    return f"{q[0]:.1f}–{q[2]:.1f}"


def heavy_median(r, variant):
    return statistics.median(wall for wall, _, _ in r["heavy_trials"][variant])


def trial_walls(r, variant):
    return "/".join(f"{wall:.2f}" for wall, _, _ in r["heavy_trials"][variant]) + " s"


def trial_received(r):
    counts = {received for variant in r["heavy_trials"].values() for _, _, received in variant}
    return ", ".join(f"{c:,}" for c in sorted(counts)) + " each"


def overdue_paragraph(results):
    """Issue 31's comparison, one sentence per backend."""
    parts = []
    for name, r in results.items():
        parts.append(
            f"{name}: idle {r['idle_ms']:.1f} ms plain, {r['idle_overdue_ms']:.1f} ms overdue "
            f"({r['idle_overdue_ms'] - r['idle_ms']:+.1f} ms; {r['idle_rss_mb']:.1f} and {r['idle_overdue_rss_mb']:.1f} MB); "
            f"heavy {heavy_median(r, 'plain'):.2f} s plain, {heavy_median(r, 'overdue'):.2f} s overdue "
            f"({heavy_median(r, 'overdue') / heavy_median(r, 'plain') - 1:+.1%}).")
    return (f"With overdue steps configured (`{OVERDUE_FLAG}` added to `send`, rows 2b and 4b; the data keeps their "
            "windows empty, so both variants do the same work): " + " ".join(parts))


def slow_row(r):
    return ", ".join(f"{c}: {rate:,.1f}" for c, rate in r["slow_curve"].items()) + f" ({slow_scaling(r):.0%} of linear)"


def pipelined_row(r):
    return ", ".join(f"{c}: {rate:,.1f} ({pipelining_gain(r, c):.2f}x)" for c, rate in r["slow_pipelined"].items())


def pipelining_check(name, r):
    """Issue 34's target: (label, passed, figures)."""
    return (f"slow server offering PIPELINING: 8 and 32 connections ≥ 1.8x the rate without ({name})",
            all(pipelining_gain(r, c) >= 1.8 for c in r["slow_pipelined"]),
            ", ".join(f"{c}: {pipelining_gain(r, c):.2f}x" for c in r["slow_pipelined"]))


def generate_slow_data(out, sizes):
    """The slow trials' data: enough due reminders for the largest trial."""
    most = max(count for _, count in sizes["slow"])
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--out", out,
                    "--users", "1000", "--assignments", str(most), "--heavy", str(most), "--flat", "0"], check=True)


def pipelining_gain(r, connections):
    return r["slow_pipelined"][connections] / r["slow_curve"][connections]


def slow_scaling(r):
    """The widest trial's rate against that many single connections."""
    widest = max(r["slow_curve"])
    return r["slow_curve"][widest] / (widest * r["slow_curve"][1])


# Issue 16's targets, per backend: (heavy-run share of the ceiling, idle ms).
TARGETS = {"SQLite": (0.75, 5), "PostgreSQL": (0.50, 10)}


def targets(results, sizes):
    checks = []
    for name, r in results.items():
        heavy_share, idle_ms = TARGETS[name]
        checks += [
            (f"heavy run ≥ {heavy_share:.0%} of the SMTP ceiling ({name})", r["heavy_ratio"] >= heavy_share,
             f"{r['heavy_ratio']:.0%}"),
            (f"`due` < 50 ms for the 10,000-row window ({name})", r["due_ms"] < 50, f"{r['due_ms']:.0f} ms"),
            (f"`summary` < 1 s, display and `--send` planning ({name})", max(r["summary_s"], r["summary_plan_s"]) < 1,
             f"{r['summary_s'] * 1000:.0f} ms, {r['summary_plan_s'] * 1000:.0f} ms"),
            (f"idle run < {idle_ms} ms median and < 20 MB ({name})", r["idle_ms"] < idle_ms and r["idle_rss_mb"] < 20,
             f"{r['idle_ms']:.1f} ms, {r['idle_rss_mb']:.1f} MB"),
            (f"idle run with every later feature within 10% of the plain one ({name})",
             r["idle_every_ms"] <= 1.10 * r["idle_every_plain_ms"],
             f"{r['idle_every_ms']:.1f} ms vs {r['idle_every_plain_ms']:.1f} ms"),
            (f"import ≥ 100,000 rows/s, peak < 100 MB ({name})", r["import_rows_s"] >= 100_000 and r["import_rss_mb"] < 100,
             f"{r['import_rows_s']:,.0f} rows/s, {r['import_rss_mb']:.0f} MB"),
            (f"memory flat within 10% ({name})", r["flat_ratio"] <= 1.10, f"{r['flat_ratio']:.2f}x"),
            (f"slow server: 32 connections ≥ 80% of 32 × one ({name})", slow_scaling(r) >= 0.8, f"{slow_scaling(r):.0%}"),
            pipelining_check(name, r),
        ]
    return checks


def slow_only(args, sizes, work):
    """Rows 8 and 8b and their targets, on the chosen backends; 1 on a FAIL."""
    generate_slow_data(work, sizes)
    results = {}
    if args.backend in ("sqlite", "both"):
        databases = iter(range(1000))
        results["SQLite"] = slow_curve(lambda: os.path.join(work, f"slow-{next(databases)}.db"), work,
                                       sizes["slow"], sizes["pipelined"])
    if args.backend in ("postgres", "both"):
        try:
            results["PostgreSQL"] = slow_curve(fresh_pg_database, work, sizes["slow"], sizes["pipelined"])
        finally:
            psql(f"DROP DATABASE IF EXISTS {PG_SLOW_DATABASE} WITH (FORCE)")
    failed = False
    for name, (curve, pipelined) in results.items():
        r = {"slow_curve": curve, "slow_pipelined": pipelined}
        print(f"{name}: 8. {slow_row(r)}; 8b. with PIPELINING {pipelined_row(r)}")
        if not args.smoke:
            label, ok, figures = pipelining_check(name, r)
            failed |= not ok
            print(f"- {'PASS' if ok else 'FAIL'}: {label} ({figures})")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="1,000 assignments, 100 due: check exact counts only")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--slow-only", action="store_true",
                        help="only the slow-server curve, with and without PIPELINING (rows 8 and 8b); writes nothing")
    args = parser.parse_args()
    sizes = dict(users=100, assignments=1_000, heavy=100, flat=300, heavy_trials=1) if args.smoke else \
        dict(users=100_000, assignments=1_000_000, heavy=10_000, flat=100_000, heavy_trials=HEAVY_TRIALS)
    sizes["slow"] = SLOW_TRIALS_SMOKE if args.smoke else SLOW_TRIALS
    sizes["pipelined"] = PIPELINED_CONNECTIONS_SMOKE if args.smoke else PIPELINED_CONNECTIONS

    # Removed however the run ends, sys.exit included (the files are gigabytes at full size).
    work_dir = tempfile.TemporaryDirectory(prefix="reminders-bench-")
    atexit.register(work_dir.cleanup)
    work = work_dir.name
    if args.slow_only:
        sys.exit(slow_only(args, sizes, work))
    print(f"bench: generating {sizes['users']:,} students and {sizes['assignments']:,} assignments in {work}", flush=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--out", work,
                    "--users", str(sizes["users"]), "--assignments", str(sizes["assignments"]),
                    "--heavy", str(sizes["heavy"]), "--flat", str(sizes["flat"])], check=True)
    slow_data = os.path.join(work, "slow")
    os.mkdir(slow_data)
    generate_slow_data(slow_data, sizes)
    results = {}
    if args.backend in ("sqlite", "both"):
        print("bench: SQLite", flush=True)
        slow_databases = iter(range(1000))
        results["SQLite"] = bench_backend("SQLite", os.path.join(work, "bench.db"), work, sizes,
                                          lambda: os.path.join(work, f"slow-{next(slow_databases)}.db"), slow_data,
                                          lambda drop=False: copy_sqlite(os.path.join(work, "bench.db"), drop))
    if args.backend in ("postgres", "both"):
        print("bench: PostgreSQL", flush=True)
        psql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        psql(f"CREATE DATABASE {PG_DATABASE}")
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DATABASE
        try:
            results["PostgreSQL"] = bench_backend("PostgreSQL", url, work, sizes, fresh_pg_database, slow_data,
                                                  copy_pg_database)
        finally:
            psql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            psql(f"DROP DATABASE IF EXISTS {PG_COPY_DATABASE} WITH (FORCE)")
            psql(f"DROP DATABASE IF EXISTS {PG_SLOW_DATABASE} WITH (FORCE)")

    failures = []
    for name, r in results.items():
        counts = [("heavy", r["heavy_received"], sizes["heavy"]), ("flat", r["flat_received"], sizes["flat"]),
                  ("due", r["due_rows"], sizes["heavy"]), ("ceiling", r["ceiling_received"], sizes["heavy"]),
                  (f"idle `due {OVERDUE_FLAG}`", r["idle_overdue_due_rows"], 0),
                  ("idle `due` with every later feature", r["idle_every_due_rows"], 0),
                  ("`due --overdue 24` a day after the heavy window (overdue-24h rows)", r["overdue_due_rows"],
                   sizes["heavy"])]
        counts += [(f"heavy ({variant}) on a fresh copy", received, sizes["heavy"])
                   for variant, runs in r["heavy_trials"].items() for _, _, received in runs]
        for what, got, expected in counts:
            if got != expected:
                failures.append(f"{name}: the {what} run counted {got}, expected exactly {expected}")

    report = table(results, sizes)
    print("\n" + report + "\n")
    if args.smoke:
        for failure in failures:
            print("FAIL: " + failure)
        print("smoke: " + ("failed" if failures else f"all counts exact on {', '.join(results)}"))
        sys.exit(1 if failures else 0)

    checks = targets(results, sizes)
    lines = [f"- {'PASS' if ok else 'FAIL'}: {label} ({value})" for label, ok, value in checks]
    lines += [f"- FAIL: {failure}" for failure in failures]
    print("\n".join(lines))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    section = "\n".join([
        f"### Run of {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}",
        "", f"Machine: {machine()}. Command: `bash bench/run.sh`.", "", overdue_paragraph(results), "", report, "", "Targets:", "", *lines, "",
    ] + (["PostgreSQL plan of the due query:", "", "```", *results["PostgreSQL"]["due_plan"], "```", ""]
         if "PostgreSQL" in results else []))
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n<!-- runs: newest first -->\n"
    marker = "<!-- runs: newest first -->\n"
    if marker not in text:
        text += "\n" + marker
    head, tail = text.split(marker, 1)
    with open(path, "w") as f:
        f.write(head + marker + "\n" + section + tail)
    print(f"\nbench: wrote the run into {path}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

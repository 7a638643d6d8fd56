#!/usr/bin/env python3
"""The supersedes backfill of the runbook (DEVOPS-AOC-19-101) as a job
program steward drives, one run per batch, against a SQLite database.

It derives "supersedes" edges (a record superseded by the next version of
the same advisory) from raw records, and speaks steward's job protocol:
JSON lines on stdout (running totals, then a final line with the next
cursor or `done`), exit 0 on success. It is idempotent per batch: a batch's
edges and its marker in `job_progress` commit together, so a batch run
again after a crash (of the job or of the worker) either finds its marker
and says what it did, or finds nothing of it applied and applies it.

  supersedes_job.py --db F --cursor C --batch-size N --run-tag T --batch-no B
  supersedes_job.py --db F --dry-run          count, write nothing
  supersedes_job.py --db F --rollback T       remove what run T wrote
  supersedes_job.py --db F --missing-edges    print how many edges are missing
  supersedes_job.py --db F --ingest 0|1       freeze (0) or unfreeze (1) ingest
  supersedes_job.py --db F --replay           replay one observation event
  supersedes_job.py --db F --init N           make the tables and N raw records

SUPERSEDES_ROW_DELAY (seconds) slows each record, to rehearse a kill
mid-batch.
"""
import argparse
import json
import os
import sqlite3
import sys
import time

EDGES = ("SELECT a.id AS older, b.id AS newer FROM raw_records a JOIN raw_records b "
         "ON b.advisory = a.advisory AND b.version = a.version + 1")


def say(**fields):
    print(json.dumps(fields), flush=True)


def connect(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute(
        "CREATE TABLE IF NOT EXISTS job_progress (run_tag TEXT NOT NULL, batch_no INTEGER NOT NULL, "
        "rows INTEGER NOT NULL, violations INTEGER NOT NULL, next_cursor TEXT, "
        "PRIMARY KEY (run_tag, batch_no))")
    return db


def batch(db, args):
    delay = float(os.environ.get("SUPERSEDES_ROW_DELAY", "0"))
    db.execute("BEGIN IMMEDIATE")
    done = db.execute(
        "SELECT rows, violations, next_cursor FROM job_progress WHERE run_tag = ? AND batch_no = ?",
        (args.run_tag, args.batch_no)).fetchone()
    if done is not None:
        db.execute("COMMIT")
        rows, violations, cursor = done
        print(f"batch {args.batch_no} of {args.run_tag} was applied before", file=sys.stderr)
        if cursor is None:
            say(rows=rows, idempotency_violations=violations, done=True)
        else:
            say(rows=rows, idempotency_violations=violations, next_cursor=cursor)
        return
    cursor = int(args.cursor) if args.cursor else 0
    ids = [r[0] for r in db.execute(
        "SELECT id FROM raw_records WHERE id > ? ORDER BY id LIMIT ?", (cursor, args.batch_size))]
    rows = violations = 0
    for n, older in enumerate(ids, 1):
        for (newer,) in db.execute(
                "SELECT b.id FROM raw_records a JOIN raw_records b ON b.advisory = a.advisory "
                "AND b.version = a.version + 1 WHERE a.id = ?", (older,)).fetchall():
            there = db.execute(
                "SELECT run_tag FROM supersedes WHERE older = ? AND newer = ?",
                (older, newer)).fetchone()
            if there is not None:
                # Written by another run: the idempotency the runbook
                # counts.
                violations += there[0] != args.run_tag
                continue
            db.execute("INSERT INTO supersedes (older, newer, run_tag) VALUES (?, ?, ?)",
                       (older, newer, args.run_tag))
            rows += 1
        if delay:
            time.sleep(delay)
        if n % 5 == 0:
            say(rows=rows, idempotency_violations=violations)
    next_cursor = str(ids[-1]) if ids else None
    db.execute(
        "INSERT INTO job_progress (run_tag, batch_no, rows, violations, next_cursor) VALUES (?, ?, ?, ?, ?)",
        (args.run_tag, args.batch_no, rows, violations, next_cursor))
    db.execute("COMMIT")
    if next_cursor is None:
        say(rows=rows, idempotency_violations=violations, done=True)
    else:
        say(rows=rows, errors=0, idempotency_violations=violations, next_cursor=next_cursor)


def init(db, records):
    """Advisories of four versions; every fifth record repeats the version
    of the one before (a conflict that yields more edges)."""
    db.execute("BEGIN IMMEDIATE")
    for ddl in [
        "CREATE TABLE raw_records (id INTEGER PRIMARY KEY, advisory TEXT NOT NULL, version INTEGER NOT NULL)",
        "CREATE TABLE supersedes (older INTEGER NOT NULL, newer INTEGER NOT NULL, run_tag TEXT NOT NULL)",
        "CREATE TABLE control (name TEXT PRIMARY KEY, enabled INTEGER NOT NULL)",
        "INSERT INTO control (name, enabled) VALUES ('ingest', 1), ('outbox', 1)",
        "CREATE TABLE replay_log (note TEXT NOT NULL)",
    ]:
        db.execute(ddl)
    for i in range(1, records + 1):
        version = (i - 1) % 4 if i % 5 == 0 else i % 4
        db.execute("INSERT INTO raw_records (id, advisory, version) VALUES (?, ?, ?)",
                   (i, f"ADV-{i // 8}", version))
    db.execute("COMMIT")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--cursor", default="")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--run-tag", default="")
    p.add_argument("--batch-no", type=int, default=0)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--rollback")
    p.add_argument("--missing-edges", action="store_true")
    p.add_argument("--ingest", type=int, choices=[0, 1])
    p.add_argument("--replay", action="store_true")
    p.add_argument("--init", type=int)
    args = p.parse_args()
    db = connect(args.db)
    if args.init is not None:
        init(db, args.init)
    elif args.dry_run:
        count = db.execute(f"SELECT COUNT(*) FROM ({EDGES}) e").fetchone()[0]
        say(count=count, errors=0, idempotency_violations=0)
    elif args.rollback:
        db.execute("BEGIN IMMEDIATE")
        gone = db.execute("DELETE FROM supersedes WHERE run_tag = ?", (args.rollback,)).rowcount
        db.execute("DELETE FROM job_progress WHERE run_tag = ?", (args.rollback,))
        db.execute("COMMIT")
        print(f"removed {gone} edges of {args.rollback}", file=sys.stderr)
    elif args.missing_edges:
        print(db.execute(
            f"SELECT COUNT(*) FROM ({EDGES}) e WHERE NOT EXISTS "
            "(SELECT 1 FROM supersedes s WHERE s.older = e.older AND s.newer = e.newer)").fetchone()[0])
    elif args.ingest is not None:
        db.execute("UPDATE control SET enabled = ?", (args.ingest,))
    elif args.replay:
        db.execute("INSERT INTO replay_log (note) VALUES ('advisory.observation.updated@1')")
    else:
        if not args.run_tag:
            p.error("a batch needs --run-tag")
        batch(db, args)


if __name__ == "__main__":
    main()

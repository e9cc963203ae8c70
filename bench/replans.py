"""Re-plans per transaction (docs/benchmarks.md, "Plan invalidation").

One server connection as a pool would use it: acting users rotating per transaction
(`SET LOCAL crm.user_name`), 20 statements prepared once at the protocol level, of which 2
read a protected table (a primary-key lookup and a top-50 page of leads) and 18 read an
unprotected one. pg_stat_statements (track_planning) counts every planning. A change of
acting user must re-plan the 2 statements that hold its decisions; every other re-plan is
waste. Prints and writes `re-plans per transaction`, for the build installed.
"""

import argparse
import os
import random
import statistics
import time

import psycopg

import harness

PROTECTED = [
    "SELECT id, company FROM leads WHERE id = %s",
    "SELECT id FROM leads WHERE created_at < now() + make_interval(secs => %s) ORDER BY created_at DESC, id DESC LIMIT 50",
]
# Unprotected reads an application makes in the same request: lookups, a join, aggregates.
UNPROTECTED = [
    "SELECT code, label FROM bench_lookup WHERE code = %s",
    "SELECT label FROM bench_lookup WHERE code = %s + 1",
    "SELECT count(*) FROM bench_lookup WHERE code < %s",
    "SELECT max(code) FROM bench_lookup WHERE code > %s",
    "SELECT a.label, b.label FROM bench_lookup a JOIN bench_lookup b ON b.code = a.code + 1 WHERE a.code = %s",
    "SELECT code FROM bench_lookup WHERE label = 'label ' || %s::text",
    "SELECT sum(code) FROM bench_lookup WHERE code BETWEEN %s AND %s + 10",
    "SELECT code FROM bench_lookup WHERE code = %s ORDER BY code LIMIT 1",
    "SELECT exists(SELECT 1 FROM bench_lookup WHERE code = %s)",
    "SELECT label FROM bench_lookup WHERE code IN (%s, %s + 2, %s + 4)",
    "SELECT upper(label) FROM bench_lookup WHERE code = %s",
    "SELECT code %% 7, count(*) FROM bench_lookup WHERE code < %s GROUP BY 1 ORDER BY 1",
    "SELECT min(label) FROM bench_lookup WHERE code >= %s",
    "SELECT label FROM bench_lookup WHERE code = abs(%s)",
    "SELECT length(label) FROM bench_lookup WHERE code = %s",
    "SELECT code FROM bench_lookup WHERE code > %s ORDER BY code LIMIT 5",
    "SELECT count(DISTINCT label) FROM bench_lookup WHERE code < %s",
    "SELECT coalesce(max(label), '') FROM bench_lookup WHERE code = %s",
]


def statements():
    out = []
    for sql in PROTECTED + UNPROTECTED:
        n = sql.count("%s")
        out.append((sql, n))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--transactions", type=int, default=500)
    args = ap.parse_args()
    host, port = os.environ["PGHOST"], os.environ["PGPORT"]
    dsn = f"host={host} port={port} dbname=crm_bench"
    su = psycopg.connect(dsn + " user=postgres", autocommit=True, prepare_threshold=None)
    su.execute("CREATE EXTENSION crm_access")
    su.execute("CREATE EXTENSION pg_stat_statements")
    harness.log("== generating the small CRM")
    harness.generate(su, harness.SCALES["small"], random.Random(42))
    su.execute("""CREATE TABLE bench_lookup (code int PRIMARY KEY, label text NOT NULL);
        INSERT INTO bench_lookup SELECT g, 'label ' || g FROM generate_series(1, 1000) g;
        CREATE INDEX ON bench_lookup (label); ANALYZE bench_lookup;
        GRANT SELECT ON bench_lookup TO bench_app""")
    users = [r[0] for r in su.execute(
        "SELECT o.name FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id WHERE u.is_active ORDER BY 1")]
    rng = random.Random(7)
    # prepare_threshold=0: every statement is prepared at the protocol level on first use and
    # executed from then on, as a driver with a statement cache does.
    app = psycopg.connect(dsn + " user=bench_app", prepare_threshold=0)
    stmts = statements()

    def transaction():
        with app.transaction():
            app.execute("SELECT set_config('crm.user_name', %s, true)", (rng.choice(users),))
            for sql, n in stmts:
                app.execute(sql, [rng.randint(1, 900)] * n).fetchall()

    for _ in range(20):
        transaction()
    su.execute("SELECT pg_stat_statements_reset()")
    start = time.perf_counter()
    for _ in range(args.transactions):
        transaction()
    seconds = time.perf_counter() - start
    rows = su.execute("""SELECT query, plans, calls FROM pg_stat_statements
                         WHERE userid = 'bench_app'::regrole AND query !~* 'set_config'""").fetchall()
    by_text = {q: (p, c) for q, p, c in rows}
    protected = sum(p for q, (p, c) in by_text.items() if "FROM leads" in q)
    other = sum(p for q, (p, c) in by_text.items() if "FROM leads" not in q)
    n = args.transactions
    line = (f"{len(stmts)} prepared statements ({len(PROTECTED)} on a protected table), acting user rotating per "
            f"transaction, {n} transactions: **{(protected + other) / n:.2f} re-plans per transaction** "
            f"({protected / n:.2f} of protected statements, {other / n:.2f} of the others); "
            f"{n / seconds:.0f} transactions per second on one connection.")
    harness.log("   " + line)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "replans.md"), "w") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()

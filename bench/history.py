"""Past catalogs at 100,000 audit entries (docs/benchmarks.md, "Past catalogs").

The medium organisation (2,000 users, 200 roles, 100 groups, 50 rules) with few records,
then 100,000 catalog changes, each its own commit: a user added to a group or taken out of
it again, by direct writes (each statement one audit entry). Checkpoints of the catalog are taken
every `crm.audit_checkpoint_every` entries (1000, the default). Measured, as medians:

- `who_could` for a moment before all 100,000 entries, before the last 50,000, and just
  before the last one, against `who_can` (the same question for now) in the same run;
- the same moments with the checkpoints removed (in a transaction rolled back), which is
  what a rebuild costs when it has to undo every later entry from the catalog of now;
- a commit that takes a checkpoint against one that does not.
"""

import argparse
import os
import random
import statistics
import time

import psycopg

import harness

ENTRIES = 100_000


def median_ms(conn, sql, args=(), runs=5):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        conn.execute(sql, args).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--entries", type=int, default=ENTRIES)
    args = ap.parse_args()
    host, port = os.environ["PGHOST"], os.environ["PGPORT"]
    dsn = f"host={host} port={port} dbname=crm_bench"
    su = psycopg.connect(dsn + " user=postgres", autocommit=True, prepare_threshold=None)
    su.execute("CREATE EXTENSION crm_access")
    p = dict(harness.SCALES["medium"], leads=20_000, accounts=4_000, opps=10_000)
    harness.log("== generating the medium organisation with few records")
    harness.generate(su, p, random.Random(42), competitors=False)
    record = su.execute("SELECT id FROM leads ORDER BY id LIMIT 1").fetchone()[0]
    # A user added to a group, then taken out again: the catalog keeps its size while the log
    # grows, as an organisation's does.
    su.execute("""CREATE PROCEDURE pg_temp.churn(n int, seed int) LANGUAGE plpgsql AS $$
        DECLARE g bigint[] := ARRAY(SELECT owner_id FROM crm.groups ORDER BY 1);
                u bigint[] := ARRAY(SELECT owner_id FROM crm.users ORDER BY 1);
                pick_g bigint; pick_u bigint; added int;
        BEGIN
            PERFORM setseed(seed / 1000.0);
            FOR i IN 1..n LOOP
                IF i % 2 = 1 THEN
                    LOOP
                        pick_g := g[1 + floor(random() * cardinality(g))::int];
                        pick_u := u[1 + floor(random() * cardinality(u))::int];
                        INSERT INTO crm.group_members VALUES (pick_g, 'user', pick_u) ON CONFLICT DO NOTHING;
                        GET DIAGNOSTICS added = ROW_COUNT;
                        EXIT WHEN added = 1;
                    END LOOP;
                ELSE
                    DELETE FROM crm.group_members WHERE group_id = pick_g AND member_kind = 'user' AND member_id = pick_u;
                END IF;
                COMMIT;
            END LOOP;
        END $$""")
    before_all = su.execute("SELECT clock_timestamp()").fetchone()[0]
    harness.log(f"== {args.entries} catalog changes, one commit each")
    t0 = time.time()
    su.execute("CALL pg_temp.churn(%s, 7)", (args.entries,))
    harness.log(f"   {time.time() - t0:.0f} s")
    entries, checkpoints, size = su.execute(
        """SELECT (SELECT count(*) FROM crm.audit_log WHERE at > %s), count(*),
                  pg_size_pretty(pg_total_relation_size('crm.audit_checkpoints') + pg_total_relation_size('crm.audit_checkpoint_tables'))
           FROM crm.audit_checkpoints""",
        (before_all,)).fetchone()
    moments = {
        f"before all {entries:,} entries": before_all,
        "before the last 50,000": su.execute(
            "SELECT at - interval '1 microsecond' FROM crm.audit_log ORDER BY at DESC, id DESC OFFSET 49999 LIMIT 1").fetchone()[0],
        "before the last one": su.execute("SELECT max(at) - interval '1 microsecond' FROM crm.audit_log").fetchone()[0],
    }
    su.execute("SET crm.user_name = 'admin'")
    who_can = median_ms(su, "SELECT crm.who_can('leads', %s)", (record,))
    with_checkpoints = {k: median_ms(su, "SELECT crm.who_could('leads', %s, 'read', %s)", (record, at)) for k, at in moments.items()}
    with su.transaction(force_rollback=True):
        su.execute("ALTER TABLE crm.audit_checkpoints DISABLE TRIGGER append_only; DELETE FROM crm.audit_checkpoints")
        without = {k: median_ms(su, "SELECT crm.who_could('leads', %s, 'read', %s)", (record, at), runs=3) for k, at in moments.items()}
    su.execute("RESET crm.user_name")

    # Two commits that take a checkpoint each (the setting at 1: every commit does; it copies
    # the tables changed since the last one, every table each tenth time) against two that do
    # not (0: never), the same changes as the churn's.
    def commits_ms(every):
        su.execute(f"SET crm.audit_checkpoint_every = {every}")
        times = []
        for _ in range(20):
            start = time.perf_counter()
            su.execute("CALL pg_temp.churn(2, %s)", (len(times) + 11,))
            times.append((time.perf_counter() - start) * 1000)
        su.execute("RESET crm.audit_checkpoint_every")
        return statistics.median(times), max(times)

    plain, _ = commits_ms(0)
    checkpointing, worst = commits_ms(1)
    catalog_rows, copied = su.execute(
        """SELECT (SELECT sum(jsonb_array_length(rows)) FROM (SELECT DISTINCT ON (tbl) rows FROM crm.audit_checkpoint_tables
                                                              ORDER BY tbl, checkpoint_id DESC) z),
                  (SELECT avg(n) FROM (SELECT count(*) AS n FROM crm.audit_checkpoint_tables GROUP BY checkpoint_id) z)""").fetchone()

    lines = [f"Medium organisation ({p['users']:,} users, {p['roles']} roles, {p['groups']} groups, {p['rules']} rules), "
             f"{entries:,} audit entries of one commit each, {checkpoints} checkpoints ({size}, a checkpoint every 1000 entries).",
             "",
             "| moment asked about | who_could ms | / who_can | without checkpoints ms | / who_can |",
             "|---|---|---|---|---|"]
    for k in moments:
        lines.append(f"| {k} | {with_checkpoints[k]:.1f} | {with_checkpoints[k] / who_can:.1f}x | {without[k]:.1f} | {without[k] / who_can:.1f}x |")
    lines += ["", f"who_can (now): {who_can:.1f} ms. The catalog holds {catalog_rows:,} rows; a checkpoint copied "
                  f"{copied:.1f} tables on average. Two commits that take a checkpoint each: {checkpointing:.1f} ms (median; "
                  f"{worst:.1f} ms when one copies every table), against {plain:.1f} ms for the same changes without."]
    for line in lines:
        harness.log("   " + line)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "history.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

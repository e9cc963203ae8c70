"""The fixed cost of a sub-millisecond read in the pooled protocol (issue 28, item 3).

One pgbench client, prepared statements (-M prepared), each transaction as a pooled
application sends it: `BEGIN; SET LOCAL crm.user_name = '<viewer>'; <one read>; END`. For a
rep, a manager, the View All auditor and the admin, a primary-key lookup and a top-50 page of
leads, in three variants on the same data, through the same trusted app role:

  b   the hand-written query: the viewer's owner ids as a literal in its WHERE clause, on a
      copy of the leads without row security (bp_leads_plain)
  b'  the same literal as a static row-security policy (bp_leads, the policy re-created per
      viewer): PostgreSQL's own row security, with nothing of crm_access's
  d   crm_access on leads
  dk  the same with crm.keep_user_plans on for the app role (plans kept across transactions
      that assert the same user again)

Rounds alternate the variants (b, b', d, b, b', d, ...); the median of the rounds' average
latencies is reported, with d/b and d/b'. Writes `fixed-cost.md` to --out.
"""

import argparse
import os
import random
import statistics
import subprocess
import tempfile

import psycopg

import harness

QUERIES = {
    "pk": "SELECT company FROM {t} l WHERE l.id = :id{f};",
    "page50": "SELECT id FROM {t} l{w} ORDER BY created_at DESC, id DESC LIMIT 50;",
}


def pgbench(host, port, script, seconds, workdir):
    """Average latency in ms of one prepared client running `script` for `seconds`."""
    path = os.path.join(workdir, "script.sql")
    with open(path, "w") as fh:
        fh.write(script)
    res = subprocess.run(["/usr/lib/postgresql/15/bin/pgbench", "-h", host, "-p", port, "-U", "bench_app", "-n", "-M", "prepared",
                          "-c", "1", "-T", str(seconds), "-f", path, "crm_bench"], capture_output=True, text=True, cwd=workdir)
    if res.returncode != 0:
        raise RuntimeError(f"pgbench failed: {res.stderr}")
    return float(next(l for l in res.stdout.splitlines() if l.startswith("latency average")).split("=")[1].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="medium", choices=sorted(harness.SCALES))
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    p = harness.SCALES[args.scale]
    host, port = os.environ["PGHOST"], os.environ["PGPORT"]
    dsn = f"host={host} port={port} dbname=crm_bench"
    su = psycopg.connect(dsn + " user=postgres", autocommit=True, prepare_threshold=None)
    su.execute("CREATE EXTENSION crm_access")
    harness.log(f"== generating the {args.scale} CRM")
    depth_of = harness.generate(su, p, random.Random(42), competitors=False)
    viewers = {k: v for k, v in harness.pick_viewers(su, depth_of).items() if k != "VP"}
    su.execute("""
        CREATE TABLE bp_leads_plain AS SELECT * FROM leads;
        ALTER TABLE bp_leads_plain ADD PRIMARY KEY (id);
        CREATE INDEX ON bp_leads_plain (owner_id);
        CREATE INDEX ON bp_leads_plain (created_at DESC, id DESC);
        CREATE TABLE bp_leads (LIKE bp_leads_plain INCLUDING INDEXES);
        INSERT INTO bp_leads SELECT * FROM bp_leads_plain;
        ALTER TABLE bp_leads ENABLE ROW LEVEL SECURITY;
        ANALYZE bp_leads_plain; ANALYZE bp_leads;
        GRANT SELECT ON bp_leads_plain, bp_leads TO bench_app""")
    app = psycopg.connect(dsn + " user=bench_app", prepare_threshold=None)
    leads = su.execute("SELECT max(id) FROM leads").fetchone()[0]
    workdir = tempfile.mkdtemp(prefix="fixed-cost-")
    rows = []
    load = harness.load_average()
    for label, user in viewers.items():
        literal = harness.filters(app, user)["l"]
        su.execute("DROP POLICY IF EXISTS viewer ON bp_leads")
        # The policy names the column without the queries' alias.
        su.execute(f"CREATE POLICY viewer ON bp_leads USING ({literal.replace('l.owner_id', 'owner_id')})")
        for query, text in QUERIES.items():
            f = "" if literal == "true" else f" AND {literal}"
            w = "" if literal == "true" else f" WHERE {literal}"
            variants = {
                "b": text.format(t="bp_leads_plain", f=f, w=w),
                "b'": text.format(t="bp_leads", f="", w=""),
                "d": text.format(t="leads", f="", w=""),
                "dk": text.format(t="leads", f="", w=""),
            }
            lat = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v, sql in variants.items():
                    script = (f"\\set id random(1, {leads})\nBEGIN;\nSET LOCAL crm.user_name = '{user}';\n{sql}\nEND;\n")
                    keep = "on" if v == "dk" else "off"
                    su.execute(f"ALTER ROLE bench_app SET crm.keep_user_plans = {keep}")
                    lat[v].append(pgbench(host, port, script, args.seconds, workdir))
            su.execute("ALTER ROLE bench_app RESET crm.keep_user_plans")
            med = {v: statistics.median(x) for v, x in lat.items()}
            spread = {v: max(x) - min(x) for v, x in lat.items()}
            row = dict(viewer=label, query=query, b=med["b"], bp=med["b'"], d=med["d"], d_b=med["d"] / med["b"], d_bp=med["d"] / med["b'"],
                       dk=med["dk"], dk_b=med["dk"] / med["b"], dk_bp=med["dk"] / med["b'"], spread=max(spread.values()))
            harness.log("   {viewer:9} {query:7} b {b:.3f}  b' {bp:.3f}  d {d:.3f}  dk {dk:.3f} ms per transaction: d/b {d_b:.2f}, d/b' {d_bp:.2f}, "
                        "dk/b {dk_b:.2f}, dk/b' {dk_bp:.2f} (largest spread of a variant's rounds {spread:.3f} ms)".format(**row))
            rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fixed-cost.md"), "w") as fh:
        fh.write(f"Scale `{args.scale}` ({p['users']} users, {p['leads']:,} leads); one pgbench client, -M prepared, each transaction "
                 f"`BEGIN; SET LOCAL crm.user_name; <read>; END`; median of {args.rounds} alternating rounds of {args.seconds} s; "
                 f"load average {load:.2f} at the start. Milliseconds per transaction.\n\n")
        fh.write("d: crm_access as installed (crm.keep_user_plans off); dk: with crm.keep_user_plans on for the app role.\n\n")
        fh.write("| viewer | query | b | b′ | d | d/b | d/b′ | dk | dk/b | dk/b′ | spread |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            fh.write("| {viewer} | {query} | {b:.3f} | {bp:.3f} | {d:.3f} | {d_b:.2f} | {d_bp:.2f} | {dk:.3f} | {dk_b:.2f} | {dk_bp:.2f} | {spread:.3f} |\n".format(**r))


if __name__ == "__main__":
    main()

"""crm_access benchmark harness (see docs/benchmarks.md).

Variants, on identical data in one run:
  a  no RLS, no filter (the floor): a superuser session
  b  no RLS, the hand-written WHERE clause (the target): owner ids precomputed as a literal list
  d  crm_access: a trusted app role acting per transaction with SET LOCAL crm.user_name
(c, a pure SQL/PL-pgSQL implementation of the same model, is not written yet.)

Every (viewer, query) must return the same rows in b and d (and in a for viewers who see
everything); a mismatch or a wrong plan shape is a failure, not a figure.
"""

import argparse
import csv
import os
import platform
import random
import statistics
import sys
import time

import psycopg

SCALES = {
    # roles, max depth, users, groups, rules, leads, accounts, opportunities, runs per timing
    "small": dict(roles=30, depth=5, users=120, groups=10, rules=6, leads=20_000, accounts=4_000, opps=10_000, runs=3),
    "medium": dict(roles=200, depth=8, users=2_000, groups=100, rules=50, leads=1_000_000, accounts=200_000, opps=500_000, runs=7),
    "large": dict(roles=400, depth=8, users=20_000, groups=400, rules=100, leads=10_000_000, accounts=2_000_000, opps=5_000_000, runs=5),
}

QUERIES = {
    "count": "SELECT count(*) FROM leads l WHERE {l}",
    "page50": "SELECT l.id FROM leads l WHERE {l} ORDER BY l.created_at DESC, l.id DESC LIMIT 50",
    "pk": "SELECT l.id, l.company FROM leads l WHERE l.id = {pk} AND {l}",
    "join": "SELECT count(*) FROM opportunities o JOIN accounts a ON a.id = o.account_id WHERE {o} AND {a}",
    "group_by_owner": "SELECT l.owner_id, count(*) FROM leads l WHERE {l} GROUP BY l.owner_id",
    "ilike": "SELECT count(*) FROM leads l WHERE l.company ILIKE '%7%42%' AND {l}",
}


def log(msg):
    print(msg, flush=True)


def generate(db, p, rng):
    """The organisation through the crm API, then the records with server-side SQL."""
    t0 = time.time()
    roles = [("R0", None, 0)]
    for i in range(1, p["roles"]):
        parent = rng.choice([r for r in roles if r[2] < p["depth"] - 1][-40:])
        roles.append((f"R{i}", parent[0], parent[2] + 1))
    depth_of = {r[0]: r[2] for r in roles}
    db.execute(
        "SELECT crm.create_role(n, p) FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(n, p, i) ORDER BY i",
        ([r[0] for r in roles], [r[1] for r in roles]),
    )
    db.execute("""SELECT crm.create_profile('Sales');
        SELECT crm.grant_privileges('Sales', m, ARRAY['read', 'create', 'edit', 'delete'])
        FROM unnest(ARRAY['Leads', 'Accounts', 'Opportunities']) m;
        SELECT crm.create_profile('Auditor', view_all => true);""")
    db.execute("SELECT crm.attach_profile(r, 'Sales') FROM unnest(%s::text[]) r", ([r[0] for r in roles],))
    db.execute("SELECT crm.create_role('Audit', 'R0'); SELECT crm.attach_profile('Audit', 'Auditor');")
    # More users towards the leaves, as in a sales organisation.
    weights = [1 + 3 * r[2] for r in roles]
    user_roles = [rng.choices(roles, weights)[0][0] for _ in range(p["users"])]
    db.execute("SELECT crm.create_user('u' || i, r) FROM unnest(%s::text[]) WITH ORDINALITY AS t(r, i)", (user_roles,))
    db.execute("SELECT crm.create_user('auditor', 'Audit'); SELECT crm.create_user('admin', 'R0', is_admin => true);")
    for g in range(p["groups"]):
        db.execute("SELECT crm.create_group(%s)", (f"G{g}",))
        for u in rng.sample(range(1, p["users"] + 1), 3):
            db.execute("SELECT crm.add_group_member(%s, 'user', %s)", (f"G{g}", f"u{u}"))
    for _ in range(p["rules"]):
        db.execute(
            "SELECT crm.add_sharing_rule(%s, 'role', %s, %s, %s, 'read')",
            (rng.choice(["Leads", "Accounts"]), rng.choice(roles)[0], *rng.choice(
                [("group", f"G{rng.randrange(p['groups'])}"), ("role", rng.choice(roles)[0])])),
        )
    log(f"   organisation: {p['roles']} roles, {p['users']} users, {p['groups']} groups, {p['rules']} rules ({time.time() - t0:.1f} s)")
    t0 = time.time()
    db.execute("""
        CREATE TABLE leads (id bigint PRIMARY KEY, company text NOT NULL, created_at timestamptz NOT NULL, owner_id bigint NOT NULL);
        CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, owner_id bigint NOT NULL);
        CREATE TABLE opportunities (id bigint PRIMARY KEY, account_id bigint NOT NULL, amount numeric NOT NULL,
                                    created_at timestamptz NOT NULL, owner_id bigint NOT NULL);""")
    owners = [r[0] for r in db.execute("SELECT id FROM crm.owners ORDER BY id")]
    n, ids = len(owners), "'{%s}'::bigint[]" % ",".join(map(str, owners))
    # Owners drawn by a hash of the row number: reproducible, and one array lookup per row.
    db.execute(f"""
        INSERT INTO leads SELECT g, 'company ' || g, timestamptz '2025-01-01' + g * interval '30 seconds',
               o.ids[1 + (hashint8(g) & 2147483647) % {n}]
        FROM generate_series(1, {p['leads']}) g, (SELECT {ids} AS ids) o;
        INSERT INTO accounts SELECT g, 'account ' || g, o.ids[1 + (hashint8(g + 7) & 2147483647) % {n}]
        FROM generate_series(1, {p['accounts']}) g, (SELECT {ids} AS ids) o;
        INSERT INTO opportunities SELECT g, 1 + (hashint8(g + 13) & 2147483647) % {p['accounts']}, g % 1000,
               timestamptz '2025-01-01' + g * interval '1 minute', o.ids[1 + (hashint8(g + 29) & 2147483647) % {n}]
        FROM generate_series(1, {p['opps']}) g, (SELECT {ids} AS ids) o;
        CREATE INDEX ON leads (owner_id); CREATE INDEX ON leads (created_at);
        CREATE INDEX ON accounts (owner_id); CREATE INDEX ON opportunities (owner_id); CREATE INDEX ON opportunities (account_id);""")
    db.execute("""SELECT crm.protect('leads', 'Leads'); SELECT crm.protect('accounts', 'Accounts');
        SELECT crm.protect('opportunities', 'Opportunities');
        DO $$ BEGIN CREATE ROLE bench_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        GRANT SELECT ON leads, accounts, opportunities TO bench_app; SELECT crm.trust_role('bench_app');""")
    db.execute("VACUUM ANALYZE leads"); db.execute("VACUUM ANALYZE accounts"); db.execute("VACUUM ANALYZE opportunities")
    log(f"   records: {p['leads']} leads, {p['accounts']} accounts, {p['opps']} opportunities ({time.time() - t0:.1f} s)")
    return depth_of


def pick_viewers(db, depth_of):
    """A rep (in a deepest role), a manager (two levels down, with the most users below), a VP
    (one level down, likewise), the View All auditor and the admin."""
    rows = db.execute("""
        WITH RECURSIVE below(top, id) AS (SELECT id, id FROM crm.roles
                                          UNION ALL SELECT b.top, r.id FROM crm.roles r JOIN below b ON r.parent_id = b.id)
        SELECT d.name, d.role, (SELECT count(*) FROM below b JOIN crm.users u ON u.role_id = b.id
                                WHERE b.top = (SELECT id FROM crm.roles WHERE name = d.role) AND b.id <> b.top) AS reports
        FROM crm.user_directory d WHERE d.name ~ '^u[0-9]+$' ORDER BY d.owner_id""").fetchall()
    depth = lambda role: depth_of.get(role, -1)
    deepest = max(depth(role) for _, role, _ in rows)
    best = lambda level: max((r for r in rows if depth(r[1]) == level), key=lambda r: r[2])[0]
    rep = next(name for name, role, _ in rows if depth(role) == deepest)
    return {"rep": rep, "manager": best(min(2, deepest - 1)), "VP": best(1), "View All": "auditor", "admin": "admin"}


def filters(app, user):
    """The hand-written filter for each table: the owner ids the user reaches, as a literal."""
    out = {}
    with app.transaction():
        app.execute("SELECT set_config('crm.user_name', %s, true)", (user,))
        for alias, table in (("l", "leads"), ("a", "accounts"), ("o", "opportunities")):
            if app.execute("SELECT crm.can(%s, 'read', -1)", (table,)).fetchone()[0]:
                out[alias] = "true"
            else:
                ids = [r[0] for r in app.execute("SELECT id FROM crm.owners WHERE crm.can(%s, 'read', id)", (table,))]
                out[alias] = "%s.owner_id = ANY('{%s}'::bigint[])" % (alias, ",".join(map(str, ids)))
    return out


def once(conn, sql, user=None):
    """One timed execution (planning included) in its own transaction; the acting user is
    set first, outside the timing, as an application would per request."""
    with conn.transaction():
        if user:
            conn.execute("SELECT set_config('crm.user_name', %s, true)", (user,))
        t = time.perf_counter()
        rows = conn.execute(sql).fetchall()
        return (time.perf_counter() - t) * 1000, rows


def timed(variants, runs):
    """Median time and rows of each variant, (conn, sql, user) each. The variants take turns
    within every run, so that drift on a busy machine affects them alike."""
    times = [[] for _ in variants]
    rows = [None] * len(variants)
    for _ in range(runs):
        for i, (conn, sql, user) in enumerate(variants):
            ms, rows[i] = once(conn, sql, user)
            times[i].append(ms)
    return [(statistics.median(t), sorted(r, key=repr)) for t, r in zip(times, rows)]


def plan(conn, sql, user):
    with conn.transaction():
        conn.execute("SELECT set_config('crm.user_name', %s, true)", (user,))
        return "\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + sql))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=SCALES, default="small")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--chart", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    p = SCALES[args.scale]
    rng = random.Random(42)
    host, port = os.environ["PGHOST"], os.environ["PGPORT"]
    dsn = f"host={host} port={port} dbname=crm_bench"
    log(f"== generating the {args.scale} CRM")
    su = psycopg.connect(dsn + " user=postgres", autocommit=True, prepare_threshold=None)
    su.execute("CREATE EXTENSION crm_access")
    depth_of = generate(su, p, rng)
    app = psycopg.connect(dsn + " user=bench_app", prepare_threshold=None)
    viewers = pick_viewers(su, depth_of)
    failures, results = [], []
    log("== running the workload (median of %d runs each)" % p["runs"])
    for label, user in viewers.items():
        f = filters(app, user)
        sees_all = all(v == "true" for v in f.values())
        # A primary key the viewer can see: the newest lead of the hand-written page.
        page = su.execute(QUERIES["page50"].format(l=f["l"])).fetchall()
        pk = page[0][0] if page else 1
        for name, q in QUERIES.items():
            everything = {"l": "true", "a": "true", "o": "true", "pk": pk}
            (a_ms, a_rows), (b_ms, b_rows), (d_ms, d_rows) = timed(
                [(su, q.format(**everything), None), (su, q.format(**f, pk=pk), None), (app, q.format(**everything), user)], p["runs"])
            ok = b_rows == d_rows and (not sees_all or a_rows == d_rows)
            if not ok:
                failures.append(f"{label} {name}: b returned {len(b_rows)} rows, d {len(d_rows)}, a {len(a_rows)}")
            results.append(dict(scale=args.scale, viewer=label, user=user, query=name, a_ms=a_ms, b_ms=b_ms, d_ms=d_ms,
                                d_over_b=d_ms / b_ms, d_over_a=d_ms / a_ms, rows=len(d_rows), same_rows=ok))
            log(f"   {label:<9} {name:<15} a {a_ms:9.2f}  b {b_ms:9.2f}  d {d_ms:9.2f} ms   d/b {d_ms / b_ms:5.2f}  rows {len(d_rows)}")
        # Plan shapes: an indexed owner filter for narrow viewers, none at all for those who see all.
        shape = plan(app, QUERIES["count"].format(l="true"), user)
        if "SubPlan" in shape or "crm." in shape:
            failures.append(f"{label}: the plan calls a function or has a SubPlan:\n{shape}")
        if sees_all and "owner_id" in shape:
            failures.append(f"{label}: sees everything but the plan filters on the owner:\n{shape}")
        if not sees_all and "owner_id = ANY" not in shape:
            failures.append(f"{label}: no constant owner filter in the plan:\n{shape}")

    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, args.scale)
    with open(base + ".csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    with open(base + ".md", "w") as fh:
        fh.write(f"Scale `{args.scale}`: {p['users']} users, {p['roles']} roles, {p['groups']} groups, {p['rules']} rules, "
                 f"{p['leads']:,} leads, {p['accounts']:,} accounts, {p['opps']:,} opportunities; "
                 f"median of {p['runs']} runs; {platform.machine()}, {os.cpu_count()} cores; PostgreSQL 15, release build.\n\n")
        fh.write("| viewer | query | rows | a: no filter ms | b: hand-written ms | d: crm_access ms | d/b | d/a |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
        for r in results:
            fh.write(f"| {r['viewer']} | {r['query']} | {r['rows']} | {r['a_ms']:.2f} | {r['b_ms']:.2f} | {r['d_ms']:.2f} | "
                     f"{r['d_over_b']:.2f} | {r['d_over_a']:.2f} |\n")
    if args.chart:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        labels = [f"{r['viewer']}\n{r['query']}" for r in results]
        fig, ax = plt.subplots(figsize=(max(10, len(results) * 0.45), 5))
        ax.bar(range(len(results)), [r["d_over_b"] for r in results], label="d/b: crm_access / hand-written")
        ax.axhline(1.15, color="red", linestyle="--", linewidth=1, label="target d/b <= 1.15")
        ax.set_xticks(range(len(results)), labels, rotation=90, fontsize=7)
        ax.set_ylabel("ratio (lower is better)")
        ax.set_title(f"crm_access vs the hand-written WHERE clause, {args.scale} scale")
        ax.legend()
        fig.tight_layout()
        fig.savefig(base + ".png", dpi=110)
    log(f"== wrote {base}.csv, {base}.md" + (f", {base}.png" if args.chart else ""))
    if failures:
        log("== FAILURES\n" + "\n".join(failures))
        sys.exit(1)
    log(f"bench: {len(results)} passed, 0 failed")


if __name__ == "__main__":
    main()

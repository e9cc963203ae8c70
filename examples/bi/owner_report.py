"""Leads and opportunities per owner, as a BI notebook would build them: pandas over a
psycopg connection made with the analyst's own login (examples/bi/grants.sql). crm_access
decides which rows and fields the login's CRM user sees; the report only groups them.

    python examples/bi/owner_report.py "host=... port=... dbname=crm user=bi_carol"

Prints the report as CSV: owner, leads, leads with a phone, budget, opportunities, amount.
"""

import sys

import pandas as pd
import psycopg


def frame(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def report(dsn):
    with psycopg.connect(dsn) as conn:
        owners = frame(conn, "SELECT id AS owner_id, name AS owner FROM crm.owners")
        leads = frame(conn, "SELECT owner_id, phone, budget FROM sales.leads_secure")
        deals = frame(conn, "SELECT owner_id, amount FROM sales.opportunities_secure")
    per_owner = leads.groupby("owner_id").agg(
        leads=("owner_id", "size"), leads_with_phone=("phone", "count"), budget=("budget", lambda b: b.sum(min_count=1))
    )
    deals_per_owner = deals.groupby("owner_id").agg(opportunities=("owner_id", "size"), amount=("amount", lambda a: a.sum(min_count=1)))
    table = per_owner.join(deals_per_owner, how="outer").reset_index().merge(owners, on="owner_id", how="left")
    table[["leads", "leads_with_phone", "opportunities"]] = table[["leads", "leads_with_phone", "opportunities"]].fillna(0).astype(int)
    return table[["owner", "leads", "leads_with_phone", "budget", "opportunities", "amount"]].sort_values("owner")


if __name__ == "__main__":
    report(sys.argv[1]).to_csv(sys.stdout, index=False)

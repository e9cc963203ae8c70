"""The web app's data access behind PgBouncer in transaction mode: one transaction per
request, with the request's CRM user set inside it (crm.set_user is transaction-local), so
the server connection goes back to the pool with no user on it."""

import psycopg


def connect(dsn):
    # PgBouncer 1.18 cannot keep a client's server-side prepared statements across
    # transactions: psycopg must not prepare (prepare_threshold=None).
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)


def leads_of(conn, crm_user):
    with conn.transaction():
        conn.execute("SELECT crm.set_user(%s)", (crm_user,))
        return conn.execute("SELECT id, company, phone, budget FROM sales.leads_secure ORDER BY id").fetchall()


def set_budget(conn, crm_user, lead_id, budget):
    with conn.transaction():
        conn.execute("SELECT crm.set_user(%s)", (crm_user,))
        return conn.execute("UPDATE sales.leads_secure SET budget = %s WHERE id = %s", (budget, lead_id)).rowcount

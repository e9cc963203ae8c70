"""Real clients against the throwaway cluster and PgBouncer that scripts/test.sh starts
(PGHOST/PGPORT, CRM_POOLER_PORT): the organisation of tests/fixtures/full_org.sql in database
crm_tools, set up with the README's "Connecting your tools" files (examples/)."""

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
DB = "crm_tools"


def dsn(user, db=DB):
    return f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={db} user={user}"


def pooled_dsn(user, db=DB):
    return f"host=127.0.0.1 port={os.environ['CRM_POOLER_PORT']} dbname={db} user={user}"


def psql(*args, db=DB):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn("postgres", db), *args], cwd=ROOT, check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def tools_db():
    """The organisation, with the web app, GraphQL and BI logins set up as the README says."""
    with psycopg.connect(dsn("postgres", "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        # The examples create their logins; the roles of an earlier run go with its database.
        c.execute("DROP ROLE IF EXISTS webapp, crm_graphql, bi_carol")
        c.execute(f"CREATE DATABASE {DB}")
    psql("-c", "CREATE EXTENSION crm_access", "-f", "tests/fixtures/full_org.sql", "-f", "examples/webapp/grants.sql",
         "-f", "examples/graphql/api.sql", "-f", "examples/bi/grants.sql")
    return DB


def as_user(user, sql, params=()):
    """What `user` gets from `sql`, asked directly (no pooler, no API) through the trusted web
    app login with the user set for the transaction: the reference the clients must match."""
    with psycopg.connect(dsn("crm_app")) as c:
        c.execute("SELECT crm.set_user(%s)", (user,))
        return c.execute(sql, params).fetchall()

"""The BI login of examples/bi: a personal login mapped to carol, granted only the secure
views, used by a pandas report (examples/bi/owner_report.py), directly and through PgBouncer."""

import subprocess
import sys

import psycopg
import pytest
from psycopg import errors

from conftest import ROOT, as_user, dsn, pooled_dsn

REPORT = """owner,leads,leads_with_phone,budget,opportunities,amount
Key Accounts,1,0,91000,0,
alice,2,0,83000,1,4001
bob,2,0,103000,3,14005
carol,2,0,143000,2,14003
"""


def run_report(conninfo):
    out = subprocess.run([sys.executable, "examples/bi/owner_report.py", conninfo], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("connect", [dsn, pooled_dsn], ids=["direct", "through PgBouncer"])
def test_the_report_holds_exactly_carols_rows_with_her_fields_masked(tools_db, connect):
    assert run_report(connect("bi_carol")) == REPORT
    # The same rows as carol reaches through the web app: her own leads, the Key Accounts
    # group's (she is in it through Rep_East), and what alice and bob share with Rep_East.
    leads = as_user("carol", "SELECT id, owner_id, phone FROM sales.leads_secure ORDER BY id")
    assert [r[0] for r in leads] == [41, 42, 51, 52, 71, 72, 91] and all(r[2] is None for r in leads)


def test_the_bi_login_reaches_nothing_else(tools_db):
    with psycopg.connect(dsn("bi_carol")) as c:
        assert c.execute("SELECT crm.acting_user()").fetchone() == ("carol",)
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM sales.leads")
    with psycopg.connect(dsn("bi_carol")) as c:
        with pytest.raises(errors.InsufficientPrivilege, match='role "bi_carol" may not set crm.user_name'):
            c.execute("SELECT crm.set_user('ceo')")
    with psycopg.connect(dsn("bi_carol")) as c:
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute("UPDATE sales.leads_secure SET budget = 1")

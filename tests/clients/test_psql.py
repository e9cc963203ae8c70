"""psql through PgBouncer with the web app's trusted login (examples/psql/inbox.sql): the
output is exactly the expected file."""

import subprocess

from conftest import ROOT, pooled_dsn


def test_a_psql_session_sets_its_user_per_transaction(tools_db):
    out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", pooled_dsn("webapp"), "-f", "examples/psql/inbox.sql"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "tests" / "clients" / "expected" / "psql_inbox.out").read_text()

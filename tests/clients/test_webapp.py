"""The web app of examples/webapp behind PgBouncer in transaction mode: concurrent requests as
rotating users on a few server connections, each getting exactly its user's rows and fields,
nothing left for the next request; writes refused as the extension says; psycopg's
server-side prepared statements and why the app turns them off."""

import random
import sys
import threading

import psycopg
import pytest
from psycopg import errors

from conftest import ROOT, as_user, pooled_dsn

sys.path.insert(0, str(ROOT / "examples" / "webapp"))
import app  # noqa: E402

USERS = ["ceo", "vp", "mgr_west", "alice", "bob", "mgr_east", "carol", "dave", "erin", "root"]
LEADS = "SELECT id, company, phone, budget FROM sales.leads_secure ORDER BY id"


def test_requests_through_the_pooler_get_their_users_rows_and_fields(tools_db):
    expected = {u: as_user(u, LEADS) for u in USERS}
    # The fixture's facts, so that the comparison cannot pass on two empty results.
    assert [r[0] for r in expected["alice"]] == [41, 42, 71, 72, 91]
    assert all(r[2] is None and r[3] is not None for r in expected["alice"]), "Sales: phone hidden, budget read-only"
    assert expected["erin"][0] == (11, "ceo's lead 1", "555-0111", 11000), "View All sees every field"
    servers, failures = set(), []

    def client(seed):
        rng = random.Random(seed)
        try:
            conn = app.connect(pooled_dsn("webapp"))
        except Exception as e:  # a thread's exception would otherwise be lost
            failures.append(("connect", repr(e)))
            return
        try:
            for _ in range(40):
                user = rng.choice(USERS)
                got = app.leads_of(conn, user)
                if got != expected[user]:
                    failures.append((user, got))
                left = conn.execute("SELECT crm.acting_user(), (SELECT count(*) FROM sales.leads_secure), pg_backend_pid()").fetchone()
                if left[:2] != (None, 0):
                    failures.append(("left over", left))
                servers.add(left[2])
        except Exception as e:
            failures.append(("error", repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(s,)) for s in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert 1 <= len(servers) <= 3, "12 clients shared PgBouncer's 3 server connections"


def test_a_refused_write_through_the_pooler_changes_nothing(tools_db):
    conn = app.connect(pooled_dsn("webapp"))
    with pytest.raises(errors.InsufficientPrivilege) as e:
        app.set_budget(conn, "alice", 42, 1)
    assert e.value.diag.message_primary == 'field "budget" of sales.leads is read-only for CRM user "alice"'
    assert app.set_budget(conn, "alice", 51, 1) == 0, "bob's lead is not alice's to see"
    assert as_user("erin", "SELECT budget FROM sales.leads_secure WHERE id IN (42, 51) ORDER BY id") == [(42000,), (51000,)]
    conn.close()


def test_server_side_prepared_statements_do_not_survive_transaction_pooling(tools_db):
    """psycopg prepares a statement on the server after prepare_threshold executions (5 by
    default; 0: at once). PgBouncer 1.18 in transaction mode gives the next client the same
    server connection, where that name is taken: an error, not someone else's plan. With
    prepare_threshold=None (app.connect) nothing is prepared and every client works."""
    first = psycopg.connect(pooled_dsn("webapp", "crm_tools_one"), autocommit=True, prepare_threshold=0)
    second = psycopg.connect(pooled_dsn("webapp", "crm_tools_one"), autocommit=True, prepare_threshold=0)
    try:
        assert app.leads_of(first, "alice") == as_user("alice", LEADS)
        with pytest.raises(errors.DuplicatePreparedStatement):
            app.leads_of(second, "bob")
    finally:
        first.close()
        second.close()
    unprepared = [app.connect(pooled_dsn("webapp", "crm_tools_one")) for _ in range(2)]
    try:
        for conn, user in zip(unprepared * 3, ["alice", "bob", "carol", "erin", "dave", "mgr_west"]):
            assert app.leads_of(conn, user) == as_user(user, LEADS), user
    finally:
        for conn in unprepared:
            conn.close()

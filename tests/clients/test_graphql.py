"""The GraphQL API of examples/graphql (PostGraphile 4 on Node.js) over HTTP, behind
PgBouncer: each request acts as the subject of its bearer token, for its transaction only."""

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, as_user, pooled_dsn

SECRET = secrets.token_hex(16)


def token(sub, secret=SECRET):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps({"sub": sub}).encode())
    return signed + "." + b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


@pytest.fixture(scope="module")
def api(tools_db):
    dsn = dict(kv.split("=") for kv in pooled_dsn("crm_graphql").split())
    env = dict(os.environ, DATABASE_URL=f"postgres://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}", JWT_SECRET=SECRET, PORT="0")
    server = subprocess.Popen(["node", "server.js"], cwd=ROOT / "examples" / "graphql", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    assert "GraphQL API on" in line, line + server.stdout.read()
    yield line.split()[-1]
    server.terminate()
    server.wait(10)


def post(url, query, auth=None):
    headers = {"content-type": "application/json"}
    if auth:
        headers["authorization"] = auth
    req = urllib.request.Request(url, json.dumps({"query": query}).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def gql(url, query, user=None):
    status, body = post(url, query, f"Bearer {token(user)}" if user else None)
    assert status == 200, body
    return body


READ = """{
  allLeads(orderBy: ID_ASC) { nodes { id company phone budget ssn } }
  inbox: allInboxes(orderBy: [TAB_ASC, ID_ASC]) { nodes { tab id subject } }
  allCalendars(orderBy: EVENT_ID_ASC) { nodes { eventId owner subject description busyOnly } }
}"""


def reference(user):
    """The same reads asked of the database directly as `user`."""
    leads = as_user(user, "SELECT id, company, phone, budget, ssn FROM sales.leads_secure ORDER BY id")
    inbox = []
    for tab in ["all", "archive", "assigned_to_me", "my_unassigned", "new"]:
        inbox += [(tab, i, s) for i, s in as_user(user, f"SELECT id, subject FROM crm.inbox_{tab} ORDER BY id")]
    calendar = as_user(user, "SELECT event_id, owner, subject, description, busy_only FROM crm.calendar ORDER BY event_id")
    return leads, inbox, calendar


def as_rows(data):
    leads = [(int(n["id"]), n["company"], n["phone"], n["budget"], n["ssn"]) for n in data["allLeads"]["nodes"]]
    inbox = [(n["tab"], int(n["id"]), n["subject"]) for n in data["inbox"]["nodes"]]
    calendar = [(int(n["eventId"]), n["owner"], n["subject"], n["description"], n["busyOnly"]) for n in data["allCalendars"]["nodes"]]
    return leads, inbox, calendar


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "mgr_west", "mgr_east", "dave", "erin", "root"])
def test_each_user_gets_their_own_leads_inbox_and_calendar(api, user):
    body = gql(api, READ, user)
    assert "errors" not in body, body
    assert as_rows(body["data"]) == reference(user)


def test_alice_in_full(api):
    leads, inbox, calendar = as_rows(gql(api, READ, "alice")["data"])
    assert leads == [
        (41, "alice's lead 1", None, 41000, None),
        (42, "alice's lead 2", None, 42000, None),
        (71, "carol's lead 1", None, 71000, None),
        (72, "carol's lead 2", None, 72000, None),
        (91, "Key Accounts' lead", None, 91000, None),
    ]
    assert inbox == [
        ("all", 1, "alice's lead 42, bob answers"),
        ("all", 4, "first contact, unknown number"),
        ("all", 5, "a chat assigned to alice"),
        ("assigned_to_me", 5, "a chat assigned to alice"),
        ("new", 4, "first contact, unknown number"),
    ]
    assert calendar == [
        (1, "alice", "doctor", "annual check-up", False),
        (2, "alice", "customer visit", "Acme renewal", False),
        (3, "carol", "Busy", None, True),
    ]


def test_unauthenticated_requests_see_nothing_and_bad_tokens_are_refused(api):
    body = gql(api, READ)
    assert body["data"] == {"allLeads": {"nodes": []}, "inbox": {"nodes": []}, "allCalendars": {"nodes": []}}
    status, body = post(api, READ, f"Bearer {token('ceo', 'not the secret')}")
    assert (status, body) == (401, {"errors": [{"message": "invalid bearer token"}]})
    status, body = post(api, READ, "Basic ceo")
    assert status == 401


def test_a_refused_mutation_returns_the_extensions_error_and_changes_nothing(api):
    body = gql(api, 'mutation { setLeadBudget(input: {leadId: "42", budget: 1}) { bigInt } }', "alice")
    [error] = body["errors"]
    assert error["message"] == 'field "budget" of sales.leads is read-only for CRM user "alice"'
    assert error["errcode"] == "42501"
    assert error["hint"] == "Leave the field out of the INSERT or UPDATE, or ask an administrator about crm.set_field_access()."
    body = gql(api, 'mutation { archiveConversation(input: {conversationId: "3"}) { boolean } }', "carol")
    assert body["errors"][0]["errcode"] == "42501", body
    assert as_user("erin", "SELECT budget FROM sales.leads_secure WHERE id = 42") == [(42000,)]
    assert as_user("carol", "SELECT id FROM crm.inbox_archive") == []
    # Allowed for a user who may: root (admin) changes the budget, and sets it back.
    assert gql(api, 'mutation { setLeadBudget(input: {leadId: "42", budget: 1}) { bigInt } }', "root")["data"]["setLeadBudget"]["bigInt"] == "1"
    assert gql(api, 'mutation { setLeadBudget(input: {leadId: "42", budget: 42000}) { bigInt } }', "root")["data"]["setLeadBudget"]["bigInt"] == "1"


def test_the_schema_shows_only_what_the_api_login_is_granted(api):
    """Introspection (anonymous, as any client may) lists the API's views and functions only:
    nothing reaches sales.leads, whose unmasked fields only the secure view may show."""
    body = gql(api, "{ __schema { queryType { fields { name } } mutationType { fields { name } } types { name } } }")
    schema = body["data"]["__schema"]
    assert sorted(f["name"] for f in schema["queryType"]["fields"]) == ["allCalendars", "allInboxes", "allLeads", "allMessages", "node", "nodeId", "query"]
    assert sorted(f["name"] for f in schema["mutationType"]["fields"]) == ["archiveConversation", "setLeadBudget"]
    names = {t["name"] for t in schema["types"]}
    assert {"Lead", "Inbox", "Message", "Calendar"} <= names
    assert not any("Secure" in n or n.startswith("Crm") or n.startswith("Sale") for n in names), sorted(names)
    # The hidden fields exist in the type, and their values are NULL for whoever may not see them.
    ssn = gql(api, "{ allLeads { nodes { ssn } } }", "erin")["data"]["allLeads"]["nodes"]
    assert len(ssn) == 15 and all(n["ssn"] is None for n in ssn)
    assert all(n["ssn"] for n in gql(api, "{ allLeads { nodes { ssn } } }", "root")["data"]["allLeads"]["nodes"])


def test_hostile_input_is_refused_and_changes_nothing(api):
    before = as_user("root", "SELECT id, budget FROM sales.leads_secure ORDER BY id")
    # A subject that is not a CRM user (quotes and all) acts as nobody: it reaches nothing.
    body = gql(api, READ, "alice' OR '1'='1")
    assert body["data"] == {"allLeads": {"nodes": []}, "inbox": {"nodes": []}, "allCalendars": {"nodes": []}}
    # Arguments are bound parameters, never SQL text: a BigInt (a string in GraphQL) is refused
    # by PostgreSQL's input function, an Int by GraphQL before any SQL runs.
    body = gql(api, 'mutation { setLeadBudget(input: {leadId: "42 OR true", budget: 1}) { bigInt } }', "root")
    assert (body["errors"][0]["errcode"], body["errors"][0]["message"]) == ("22P02", 'invalid input syntax for type bigint: "42 OR true"')
    status, body = post(api, 'mutation { setLeadBudget(input: {leadId: "42", budget: "1; DROP TABLE sales.leads"}) { bigInt } }',
                        f"Bearer {token('root')}")
    assert (status, body["errors"][0]["message"]) == (400, 'Int cannot represent non-integer value: "1; DROP TABLE sales.leads"')
    # A record that does not exist, or that the user cannot see, changes nothing.
    assert gql(api, 'mutation { setLeadBudget(input: {leadId: "999999", budget: 1}) { bigInt } }', "root")["data"]["setLeadBudget"]["bigInt"] == "0"
    body = gql(api, 'mutation { archiveConversation(input: {conversationId: "999999"}) { boolean } }', "alice")
    assert (body["errors"][0]["errcode"], body["errors"][0]["message"]) == ("42704", "no conversation with id 999999 is visible to you")
    body = gql(api, 'mutation { setLeadBudget(input: {leadId: "42", budget: null}) { bigInt } }', "alice")
    assert body["errors"][0]["errcode"] == "42501", body
    assert as_user("root", "SELECT id, budget FROM sales.leads_secure ORDER BY id") == before
    assert as_user("alice", "SELECT id FROM crm.inbox_archive") == []

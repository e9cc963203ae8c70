//! Copied access columns stay true when the record they copy changes at the same time
//! (docs/security.md, attack class "races"): a child's copy of its parent's owner, a
//! conversation's copy of its lead's owner, a message's copy of its conversation's
//! visibility. Each test holds one side of the race open in one session, starts the other
//! side in a second session, waits until that one is blocked on the first, and only then
//! lets the first commit; the copy must end up equal to the source.

use std::thread;

use crm_client_tests::{connect, fresh_database, login_role, until_blocked};
use postgres::{Client, IsolationLevel};

const APP: &str = "race_app";

/// CEO > Rep (alice, bob); root is a CRM admin. Accounts 1 (alice) with opportunities
/// linked to it, lead 1 (alice), conversation 1 assigned to alice.
fn org(db: &str) -> Client {
    let mut c = fresh_database(db);
    login_role(&mut c, APP);
    c.batch_execute(&format!(
        "SELECT crm.create_role('CEO', NULL); SELECT crm.create_role('Rep', 'CEO'); SELECT crm.create_role('IT', 'CEO');
         SELECT crm.create_profile('Sales');
         SELECT crm.grant_privileges('Sales', m, ARRAY['read', 'create', 'edit', 'delete'])
         FROM unnest(ARRAY['Leads', 'Accounts', 'Opportunities', 'Messages']) m;
         SELECT crm.set_message_permissions('Sales', ARRAY['mine']);
         SELECT crm.attach_profile(r, 'Sales') FROM unnest(ARRAY['CEO', 'Rep', 'IT']) r;
         SELECT crm.create_user('ceo', 'CEO'), crm.create_user('alice', 'Rep'), crm.create_user('bob', 'Rep');
         SELECT crm.create_user('root', 'IT', is_admin => true);
         SELECT crm.trust_role('{APP}');
         CREATE TABLE accounts (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
         CREATE TABLE opportunities (id bigint PRIMARY KEY, owner_id bigint NOT NULL, account_id bigint REFERENCES accounts);
         CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
         SELECT crm.protect('accounts', 'Accounts'), crm.protect('opportunities', 'Opportunities'), crm.protect('leads', 'Leads');
         SELECT crm.link_parent('opportunities', 'account_id', 'accounts');
         INSERT INTO accounts VALUES (1, crm.owner_id('alice'));
         INSERT INTO leads VALUES (1, crm.owner_id('alice'));
         INSERT INTO crm.conversations (subject, assigned_to) VALUES ('one', crm.owner_id('alice'));
         GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, opportunities, leads TO {APP};"
    ))
    .unwrap();
    c
}

/// Run `sql` as the trusted app acting as `user`, in its own session and thread.
fn acting(db: &'static str, user: &'static str, sql: &'static str) -> thread::JoinHandle<Result<(), postgres::Error>> {
    thread::spawn(move || {
        let mut app = connect(db, APP);
        let mut tx = app.transaction()?;
        tx.execute("SELECT crm.set_user($1)", &[&user])?;
        tx.batch_execute(sql)?;
        tx.commit()
    })
}

fn owner(c: &mut Client, name: &str) -> i64 {
    c.query_one("SELECT crm.owner_id($1)", &[&name]).unwrap().get(0)
}

#[test]
fn a_child_written_while_its_parent_changes_owner_gets_the_new_owner() {
    const DB: &str = "race_child_after";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut pusher = connect(DB, "postgres");
    let bob = owner(&mut admin, "bob");
    // The parent's new owner is not committed when the child is written.
    let mut tx = pusher.transaction().unwrap();
    tx.execute("UPDATE accounts SET owner_id = $1 WHERE id = 1", &[&bob]).unwrap();
    let writer = acting(DB, "root", "INSERT INTO opportunities VALUES (10, crm.owner_id('alice'), 1)");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    writer.join().unwrap().unwrap();
    let kept: i64 = admin.query_one("SELECT crm_parent_owner FROM opportunities WHERE id = 10", &[]).unwrap().get(0);
    assert_eq!(kept, bob);
}

#[test]
fn a_parent_owner_change_reaches_a_child_committed_meanwhile_even_in_repeatable_read() {
    const DB: &str = "race_child_before";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut writer = connect(DB, APP);
    let bob = owner(&mut admin, "bob");
    // The child is written (with alice's account) and not committed yet.
    let mut tx = writer.transaction().unwrap();
    tx.execute("SELECT crm.set_user('root')", &[]).unwrap();
    tx.execute("INSERT INTO opportunities VALUES (11, crm.owner_id('alice'), 1)", &[]).unwrap();
    // A REPEATABLE READ transaction whose snapshot predates the child's commit moves the account.
    let pusher = thread::spawn(move || {
        let mut c = connect(DB, "postgres");
        let mut t = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start()?;
        t.query("SELECT count(*) FROM opportunities", &[])?;
        t.execute("UPDATE accounts SET owner_id = $1 WHERE id = 1", &[&bob])?;
        t.commit()
    });
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    pusher.join().unwrap().unwrap();
    let kept: i64 = admin.query_one("SELECT crm_parent_owner FROM opportunities WHERE id = 11", &[]).unwrap().get(0);
    assert_eq!(kept, bob);
}

#[test]
fn a_conversation_linked_while_its_lead_changes_owner_gets_the_new_owner() {
    const DB: &str = "race_linked";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut pusher = connect(DB, "postgres");
    let bob = owner(&mut admin, "bob");
    let mut tx = pusher.transaction().unwrap();
    tx.execute("UPDATE leads SET owner_id = $1 WHERE id = 1", &[&bob]).unwrap();
    let writer = acting(DB, "root", "INSERT INTO crm.conversations (subject, linked_table, linked_id) VALUES ('linked', 'leads', 1)");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    writer.join().unwrap().unwrap();
    let kept: i64 = admin.query_one("SELECT linked_owner FROM crm.conversations WHERE subject = 'linked'", &[]).unwrap().get(0);
    assert_eq!(kept, bob);
}

#[test]
fn a_message_written_while_its_conversation_is_reassigned_gets_the_new_assignee() {
    const DB: &str = "race_message_after";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut pusher = connect(DB, "postgres");
    let bob = owner(&mut admin, "bob");
    let mut tx = pusher.transaction().unwrap();
    tx.execute("UPDATE crm.conversations SET assigned_to = $1 WHERE id = 1", &[&bob]).unwrap();
    let writer = acting(DB, "root", "INSERT INTO crm.messages (conversation_id, direction, body) VALUES (1, 'inbound', 'hello')");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    writer.join().unwrap().unwrap();
    let kept: i64 = admin.query_one("SELECT crm_assigned_to FROM crm.messages WHERE body = 'hello'", &[]).unwrap().get(0);
    assert_eq!(kept, bob);
}

#[test]
fn a_repeatable_read_reassignment_waits_for_a_message_written_meanwhile_and_reaches_it() {
    const DB: &str = "race_message_before";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut writer = connect(DB, APP);
    let bob = owner(&mut admin, "bob");
    let mut tx = writer.transaction().unwrap();
    tx.execute("SELECT crm.set_user('root')", &[]).unwrap();
    // Dated before the conversation's newest message: it does not move last_message_at, so
    // nothing but the message itself ties it to the conversation.
    tx.execute("INSERT INTO crm.messages (conversation_id, direction, body, sent_at) VALUES (1, 'inbound', 'early', '2000-01-01')", &[]).unwrap();
    // A REPEATABLE READ transaction whose snapshot cannot see the message reassigns it.
    let pusher = thread::spawn(move || -> Result<(), postgres::Error> {
        let mut c = connect(DB, "postgres");
        let mut t = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start()?;
        t.query("SELECT count(*) FROM crm.messages", &[])?;
        t.execute("UPDATE crm.conversations SET assigned_to = $1 WHERE id = 1", &[&bob])?;
        t.commit()
    });
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    pusher.join().unwrap().unwrap();
    let kept: i64 = admin.query_one("SELECT crm_assigned_to FROM crm.messages WHERE body = 'early'", &[]).unwrap().get(0);
    assert_eq!(kept, bob);
}

#[test]
fn a_conversation_linked_while_its_lead_is_deleted_is_refused() {
    const DB: &str = "race_linked_deleted";
    let _admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut deleter = connect(DB, "postgres");
    let mut tx = deleter.transaction().unwrap();
    tx.execute("DELETE FROM leads WHERE id = 1", &[]).unwrap();
    let writer = acting(DB, "root", "INSERT INTO crm.conversations (subject, linked_table, linked_id) VALUES ('orphan', 'leads', 1)");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    let err = writer.join().unwrap().expect_err("the lead is gone by the time the link is read");
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
}

#[test]
fn a_child_written_while_its_parent_is_deleted_is_refused() {
    const DB: &str = "race_child_deleted";
    let mut admin = org(DB);
    admin.batch_execute("INSERT INTO accounts VALUES (2, crm.owner_id('alice'))").unwrap();
    let mut observer = connect(DB, "postgres");
    let mut deleter = connect(DB, "postgres");
    let mut tx = deleter.transaction().unwrap();
    tx.execute("DELETE FROM accounts WHERE id = 2", &[]).unwrap();
    let writer = acting(DB, "root", "INSERT INTO opportunities VALUES (12, crm.owner_id('alice'), 2)");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    let err = writer.join().unwrap().expect_err("the account is gone by the time the child is written");
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
}

#[test]
fn no_login_can_hold_the_copy_lock_to_block_writers() {
    const DB: &str = "race_lock_dos";
    let mut admin = org(DB);
    login_role(&mut admin, "race_stranger");
    let accounts: u32 = admin.query_one("SELECT 'accounts'::regclass::oid", &[]).unwrap().get(0);
    // Whatever advisory key a login takes (crm_access's earlier key among them), writers of
    // copies do not wait for it: the copy lock is an object lock no SQL command takes.
    let mut stranger = connect(DB, "race_stranger");
    let key = (0x6372_6d61_i64 << 32) | i64::from(accounts);
    stranger.execute("SELECT pg_advisory_lock($1)", &[&key]).unwrap();
    stranger.execute("SELECT pg_advisory_lock(1, $1::bigint::int)", &[&i64::from(accounts)]).unwrap();
    let mut app = connect(DB, APP);
    app.batch_execute("SET lock_timeout = '2s'; BEGIN; SELECT crm.set_user('root');
                       INSERT INTO opportunities VALUES (13, crm.owner_id('alice'), 1);
                       UPDATE accounts SET owner_id = crm.owner_id('bob') WHERE id = 1; COMMIT;")
        .unwrap();
    let kept: i64 = admin.query_one("SELECT crm_parent_owner FROM opportunities WHERE id = 13", &[]).unwrap().get(0);
    assert_eq!(kept, owner(&mut admin, "bob"));
}

/// Run `sql` as `postgres` in its own session and thread, in a REPEATABLE READ transaction
/// whose snapshot is taken before `sql` starts.
fn repeatable_read(db: &'static str, sql: &'static str) -> thread::JoinHandle<Result<(), postgres::Error>> {
    thread::spawn(move || {
        let mut c = connect(db, "postgres");
        let mut t = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start()?;
        t.query("SELECT count(*) FROM opportunities", &[])?;
        t.batch_execute(sql)?;
        t.commit()
    })
}

#[test]
fn a_link_in_repeatable_read_rewrites_a_copy_forged_while_it_waited() {
    const DB: &str = "race_link_forged";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut forger = connect(DB, APP);
    let alice = owner(&mut admin, "alice");
    // Unlinked, the copy is an ordinary column: bob writes alice into his opportunity without
    // an account, and has not committed when an administrator links the table again.
    admin.batch_execute("SELECT crm.unlink_parent('opportunities'); INSERT INTO opportunities VALUES (12, crm.owner_id('bob'), NULL);").unwrap();
    let mut tx = forger.transaction().unwrap();
    tx.execute("SELECT crm.set_user('bob')", &[]).unwrap();
    assert_eq!(tx.execute("UPDATE opportunities SET crm_parent_owner = $1 WHERE id = 12", &[&alice]).unwrap(), 1);
    let linker = repeatable_read(DB, "SELECT crm.link_parent('opportunities', 'account_id', 'accounts')");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    linker.join().unwrap().unwrap();
    let kept: Option<i64> = admin.query_one("SELECT crm_parent_owner FROM opportunities WHERE id = 12", &[]).unwrap().get(0);
    assert_eq!(kept, None, "the forged copy survived the link");
}

#[test]
fn an_unlink_in_repeatable_read_keeps_the_triggers_a_link_committed_meanwhile_needs() {
    const DB: &str = "race_unlink_lonely";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut linker = connect(DB, "postgres");
    admin
        .batch_execute(
            "CREATE TABLE tickets (id bigint PRIMARY KEY, owner_id bigint NOT NULL, account_id bigint);
             SELECT crm.protect('tickets', 'Tickets');",
        )
        .unwrap();
    // A second child of accounts is being linked when the first one is unlinked.
    let mut tx = linker.transaction().unwrap();
    tx.execute("SELECT crm.link_parent('tickets', 'account_id', 'accounts')", &[]).unwrap();
    let unlinker = repeatable_read(DB, "SELECT crm.unlink_parent('opportunities')");
    until_blocked(&mut observer, DB);
    tx.commit().unwrap();
    unlinker.join().unwrap().unwrap();
    let problems: Option<String> = admin.query_one("SELECT crm.protection_problems('accounts')", &[]).unwrap().get(0);
    assert_eq!(problems, None, "accounts lost the triggers its child tickets needs");
    let children: Vec<String> = admin.query("SELECT child::text FROM crm.parent_links", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(children, ["tickets"]);
}

#[test]
fn an_unlink_waits_for_a_writer_of_the_parent_that_then_reads_the_child() {
    const DB: &str = "race_unlink_order";
    let _admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let mut writer = connect(DB, APP);
    // alice writes her account, then reads the opportunities: the unlink must not hold the
    // child while it waits for the parent (it deadlocked with her).
    let mut tx = writer.transaction().unwrap();
    tx.execute("SELECT crm.set_user('alice')", &[]).unwrap();
    tx.execute("UPDATE accounts SET owner_id = owner_id WHERE id = 1", &[]).unwrap();
    let unlinker = thread::spawn(|| connect(DB, "postgres").batch_execute("SELECT crm.unlink_parent('opportunities')"));
    until_blocked(&mut observer, DB);
    tx.query("SELECT count(*) FROM opportunities", &[]).unwrap();
    tx.commit().unwrap();
    unlinker.join().unwrap().unwrap();
}

/// A sharing rule naming a related module, added while an administrator removes the relation
/// (or drops the module) in another session: one of them waits for the other and is then
/// refused, and no rule is left naming a module that is not related (red team of issue 25:
/// both committed, and a module later created under that name was shared by the old rule).
#[test]
fn a_rule_and_the_removal_of_its_relation_do_not_both_commit() {
    const DB: &str = "race_relations";
    let mut admin = org(DB);
    admin
        .batch_execute("SELECT crm.create_module('Notes', 'Accounts'); SELECT crm.create_module('Tasks', 'Accounts');")
        .unwrap();
    let rule = "SELECT crm.add_sharing_rule('Accounts', 'role', 'Rep', 'role', 'CEO', 'read', ARRAY['Notes'])";
    for removal in ["SELECT crm.unrelate_modules('Accounts', 'Notes')", "SELECT crm.drop_module('Tasks')"] {
        let rule = if removal.contains("Tasks") { "SELECT crm.add_sharing_rule('Accounts', 'role', 'Rep', 'role', 'CEO', 'read', ARRAY['Tasks'])" } else { rule };
        // The removal holds its locks open; the rule waits for it, then finds the relation gone.
        let mut first = connect(DB, "postgres");
        let mut tx = first.transaction().unwrap();
        tx.batch_execute(removal).unwrap();
        let second = thread::spawn(move || {
            let mut c = connect(DB, "postgres");
            c.batch_execute(rule)
        });
        until_blocked(&mut admin, DB);
        tx.commit().unwrap();
        let err = second.join().unwrap().unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{removal}: {err}"));
        assert_eq!(db.code().code(), "22023", "{removal}: {err}");
        assert!(db.message().contains("is not a related module of Accounts"), "{removal}: {}", db.message());
    }
    // The other order: the rule holds the relation; the removal waits, then finds the rule.
    admin.batch_execute("SELECT crm.relate_modules('Accounts', 'Notes')").unwrap();
    let mut first = connect(DB, "postgres");
    let mut tx = first.transaction().unwrap();
    tx.batch_execute(rule).unwrap();
    let second = thread::spawn(move || {
        let mut c = connect(DB, "postgres");
        c.batch_execute("SELECT crm.unrelate_modules('Accounts', 'Notes')")
    });
    until_blocked(&mut admin, DB);
    tx.commit().unwrap();
    let err = second.join().unwrap().unwrap_err();
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("2BP01"), "{err}");
    let dangling: i64 = admin
        .query_one(
            "SELECT count(*) FROM crm.sharing_rules r, unnest(r.related_modules) m
             WHERE NOT EXISTS (SELECT 1 FROM crm.module_relations x WHERE x.parent = r.module AND x.child = m)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dangling, 0);
}

/// A restriction rule and the protection of a table of its module that lacks the rule's column
/// (red team of issue 25): before, both committed, the table's restricted users read nothing
/// and every later DDL of the database was refused. Now whichever comes second waits for the
/// first and is refused, in either order and in REPEATABLE READ too; the same for the table
/// owner's change of the column.
#[test]
fn a_restriction_rule_and_a_table_without_its_column_do_not_both_commit() {
    const DB: &str = "race_restrictions";
    let mut admin = org(DB);
    admin
        .batch_execute(
            "SELECT crm.create_module('Proj');
             CREATE TABLE p1 (id bigint PRIMARY KEY, owner_id bigint NOT NULL, zone text);
             SELECT crm.protect('p1', 'Proj');",
        )
        .unwrap();
    let problems = |admin: &mut Client| -> i64 {
        admin
            .query_one("SELECT count(*) FROM crm.protected_tables p, crm.restrictions r WHERE r.module = p.module AND crm.restriction_column_problem(p.tbl, r.column_name) IS NOT NULL", &[])
            .unwrap()
            .get(0)
    };
    for (n, isolation) in ["READ COMMITTED", "REPEATABLE READ"].iter().enumerate() {
        // The protect holds the module; the rule waits, then finds the table without its column.
        admin.batch_execute(&format!("CREATE TABLE q{n} (id bigint PRIMARY KEY, owner_id bigint NOT NULL)")).unwrap();
        let mut first = connect(DB, "postgres");
        let mut tx = first.transaction().unwrap();
        tx.batch_execute(&format!("SELECT crm.protect('q{n}', 'Proj')")).unwrap();
        let isolation = isolation.to_string();
        let second = thread::spawn(move || {
            let mut c = connect(DB, "postgres");
            c.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL {isolation}; SELECT 1; SELECT crm.add_restriction_rule('Proj', 'role', 'Rep', 'zone', ARRAY['W']); COMMIT;"
            ))
        });
        until_blocked(&mut admin, DB);
        tx.commit().unwrap();
        let err = second.join().unwrap().unwrap_err();
        let code = err.as_db_error().map(|e| e.code().code().to_string());
        assert!(matches!(code.as_deref(), Some("42703") | Some("40001")), "{err}");
        assert_eq!(problems(&mut admin), 0);
        admin.batch_execute(&format!("SELECT crm.unprotect('q{n}')")).unwrap();
    }
    // The other order: the rule holds the module; the protect waits, then finds the rule.
    admin.batch_execute("CREATE TABLE r1 (id bigint PRIMARY KEY, owner_id bigint NOT NULL)").unwrap();
    let mut first = connect(DB, "postgres");
    let mut tx = first.transaction().unwrap();
    let rule: i64 = tx.query_one("SELECT crm.add_restriction_rule('Proj', 'role', 'Rep', 'zone', ARRAY['W'])", &[]).unwrap().get(0);
    let second = thread::spawn(move || {
        let mut c = connect(DB, "postgres");
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1; SELECT crm.protect('r1', 'Proj'); COMMIT;")
    });
    until_blocked(&mut admin, DB);
    tx.commit().unwrap();
    let err = second.join().unwrap().unwrap_err();
    let code = err.as_db_error().map(|e| e.code().code().to_string());
    assert!(matches!(code.as_deref(), Some("55000") | Some("40001")), "{err}");
    assert_eq!(problems(&mut admin), 0);
    // The table's owner retyping the column while a rule is added: the rule waits for the
    // ALTER TABLE, then finds the column of a type it cannot compare.
    admin.batch_execute(&format!("SELECT crm.drop_restriction_rule({rule})")).unwrap();
    let mut first = connect(DB, "postgres");
    let mut tx = first.transaction().unwrap();
    tx.batch_execute("ALTER TABLE p1 ALTER COLUMN zone TYPE numeric USING NULL").unwrap();
    let second = thread::spawn(move || {
        let mut c = connect(DB, "postgres");
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1; SELECT crm.add_restriction_rule('Proj', 'role', 'Rep', 'zone', ARRAY['W']); COMMIT;")
    });
    until_blocked(&mut admin, DB);
    tx.commit().unwrap();
    let err = second.join().unwrap().unwrap_err();
    let code = err.as_db_error().map(|e| e.code().code().to_string());
    assert!(matches!(code.as_deref(), Some("42804") | Some("40001")), "{err}");
    assert_eq!(problems(&mut admin), 0);
}

/// Record shares (issue 26, red team): a share racing a change of the record's owner, or its
/// deletion, does not outlive it. The sharer reads the record under its own snapshot; the share
/// locks it and reads it again as it stands, so it waits for the change, then is refused.
#[test]
fn a_share_racing_a_change_of_owner_or_a_delete_does_not_outlive_it() {
    const DB: &str = "race_share";
    let mut admin = org(DB);
    admin.batch_execute("INSERT INTO leads VALUES (2, crm.owner_id('alice'))").unwrap();
    let mut observer = connect(DB, "postgres");
    for (change, key) in [("UPDATE leads SET owner_id = crm.owner_id('bob') WHERE id = 1", 1i64), ("DELETE FROM leads WHERE id = 2", 2)] {
        let mut changer = connect(DB, "postgres");
        let mut tx = changer.transaction().unwrap();
        tx.execute(change, &[]).unwrap();
        let sharer = thread::spawn(move || {
            let mut app = connect(DB, APP);
            let mut tx = app.transaction()?;
            tx.execute("SELECT crm.set_user('alice')", &[])?;
            tx.execute("SELECT crm.share_record('leads', $1::bigint, 'user', 'ceo', 'read')", &[&key])?;
            tx.commit()
        });
        until_blocked(&mut observer, DB);
        tx.commit().unwrap();
        let err = sharer.join().unwrap().expect_err("the record changed while it was being shared");
        assert_eq!(err.code(), Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE), "{change}: {err}");
    }
    // A new record under the deleted key is not shared; nothing was.
    admin.batch_execute("INSERT INTO leads VALUES (2, crm.owner_id('bob'))").unwrap();
    assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0);
}

/// A share and the deletion of its receiver (a user, a group, a role), in either order, leave
/// no share naming a receiver that is gone (red team of issue 26, round 3: the share committed
/// after the deletion and stayed). A share made first holds its receiver until it commits; the
/// deletion waits, then removes it with the receiver's other shares. A deletion first: the share
/// waits for it, then finds no receiver (42704) and is not made.
#[test]
fn a_share_racing_the_deletion_of_its_receiver_does_not_outlive_it() {
    const DB: &str = "race_share_receiver";
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let receivers = [("user", "sharee", "SELECT crm.create_user('sharee', 'Rep')", "SELECT crm.delete_user('sharee')"),
        ("group", "team", "SELECT crm.create_group('team')", "SELECT crm.drop_group('team')"),
        ("role", "Temp", "SELECT crm.create_role('Temp', 'Rep')", "SELECT crm.delete_role('Temp')")];
    for (kind, name, create, delete) in receivers {
        // The share first, the deletion waiting for it.
        admin.batch_execute(create).unwrap();
        let mut app = connect(DB, APP);
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT crm.set_user('alice')", &[]).unwrap();
        tx.execute("SELECT crm.share_record('leads', 1::bigint, $1, $2, 'read')", &[&kind, &name]).unwrap();
        let deleter = thread::spawn(move || connect(DB, "postgres").batch_execute(delete));
        until_blocked(&mut observer, DB);
        tx.commit().unwrap();
        deleter.join().unwrap().unwrap();
        assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0, "{kind}: the share outlived its receiver");
        // The deletion first, the share waiting for it.
        admin.batch_execute(create).unwrap();
        let mut deleter = connect(DB, "postgres");
        let mut tx = deleter.transaction().unwrap();
        tx.batch_execute(delete).unwrap();
        let sharer = thread::spawn(move || {
            let mut app = connect(DB, APP);
            let mut tx = app.transaction()?;
            tx.execute("SELECT crm.set_user('alice')", &[])?;
            tx.execute("SELECT crm.share_record('leads', 1::bigint, $1, $2, 'read')", &[&kind, &name])?;
            tx.commit()
        });
        until_blocked(&mut observer, DB);
        tx.commit().unwrap();
        let err = sharer.join().unwrap().expect_err("the receiver is gone");
        assert_eq!(err.code(), Some(&postgres::error::SqlState::UNDEFINED_OBJECT), "{kind}: {err}");
        assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0, "{kind}: a share naming nobody");
    }
}

/// The same under REPEATABLE READ, without any wait: a snapshot taken before the change of
/// owner still shows the sharer as the owner, and the share is refused, not made.
#[test]
fn a_share_under_a_snapshot_older_than_a_change_of_owner_is_refused() {
    const DB: &str = "race_share_rr";
    let mut admin = org(DB);
    let mut app = connect(DB, APP);
    let mut tx = app.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start().unwrap();
    tx.execute("SELECT crm.set_user('alice')", &[]).unwrap();
    assert_eq!(tx.query_one("SELECT count(*) FROM leads", &[]).unwrap().get::<_, i64>(0), 1);
    admin.batch_execute("UPDATE leads SET owner_id = crm.owner_id('bob') WHERE id = 1").unwrap();
    let err = tx.execute("SELECT crm.share_record('leads', 1::bigint, 'user', 'ceo', 'read')", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE), "{err}");
    drop(tx);
    assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0);
}

/// The other order: the share commits while a change of owner or a delete waits for the lock
/// the share holds on its record; the change then removes it (its trigger reads the shares as
/// they stand, not as the statement's snapshot had them).
#[test]
fn a_change_of_owner_or_a_delete_waiting_for_a_share_removes_it() {
    const DB: &str = "race_share_first";
    let mut admin = org(DB);
    admin.batch_execute("INSERT INTO leads VALUES (2, crm.owner_id('alice'))").unwrap();
    let mut observer = connect(DB, "postgres");
    for (change, key) in [("UPDATE leads SET owner_id = crm.owner_id('bob') WHERE id = 1", 1i64), ("DELETE FROM leads WHERE id = 2", 2)] {
        let mut app = connect(DB, APP);
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT crm.set_user('alice')", &[]).unwrap();
        tx.execute("SELECT crm.share_record('leads', $1::bigint, 'user', 'ceo', 'read')", &[&key]).unwrap();
        let changer = thread::spawn(move || {
            let mut c = connect(DB, "postgres");
            c.batch_execute(change)
        });
        until_blocked(&mut observer, DB);
        tx.commit().unwrap();
        changer.join().unwrap().unwrap();
        assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0, "{change}");
    }
}

/// Share commits take the commit lock together (SHARE: `catalog::commits`), not one at a time,
/// and a catalog commit still waits for them and they for it: eight sessions sharing and
/// unsharing their own leads at once, while a ninth changes the catalog, all succeed (the first
/// cut of this deadlocked two share commits whose dating asked for the planners' mode beside
/// each other's), and every share and unshare is in the audit log.
#[test]
fn shares_commit_together_beside_catalog_commits() {
    const DB: &str = "race_share_commits";
    let mut admin = org(DB);
    admin.batch_execute("INSERT INTO leads SELECT g, crm.owner_id('alice') FROM generate_series(100, 107) g").unwrap();
    let sharers: Vec<_> = (100..108i64)
        .map(|lead| {
            thread::spawn(move || -> Result<(), postgres::Error> {
                let mut app = connect(DB, APP);
                for _ in 0..40 {
                    let mut tx = app.transaction()?;
                    tx.execute("SELECT crm.set_user('alice')", &[])?;
                    let share: i64 = tx.query_one("SELECT crm.share_record('leads', $1::bigint, 'user', 'bob', 'read')", &[&lead])?.get(0);
                    tx.commit()?;
                    let mut tx = app.transaction()?;
                    tx.execute("SELECT crm.set_user('alice')", &[])?;
                    tx.execute("SELECT crm.unshare_record($1)", &[&share])?;
                    tx.commit()?;
                }
                Ok(())
            })
        })
        .collect();
    let catalog = thread::spawn(move || -> Result<(), postgres::Error> {
        let mut c = connect(DB, "postgres");
        for i in 0..20 {
            c.batch_execute(&format!("SELECT crm.create_group('g{i}')"))?;
        }
        Ok(())
    });
    for s in sharers {
        s.join().unwrap().unwrap();
    }
    catalog.join().unwrap().unwrap();
    assert_eq!(admin.query_one("SELECT count(*) FROM crm.shares", &[]).unwrap().get::<_, i64>(0), 0);
    let logged: i64 = admin
        .query_one("SELECT count(*) FROM crm.audit_log WHERE operation IN ('share_record', 'unshare_record')", &[])
        .unwrap()
        .get(0);
    assert_eq!(logged, 8 * 40 * 2);
}

/// Red team of bdf281e: a TRUNCATE of crm.group_members in a REPEATABLE READ transaction
/// removes a membership committed after its snapshot, which the audit trigger's read of the
/// table (under that snapshot) does not list. The commit must not patch from the groups that
/// trigger named: it reads every membership, and the published model loses alice's (bob no
/// longer reads her lead through the rule naming the group), the bytes a compile makes.
#[test]
fn a_truncate_of_memberships_committed_after_its_snapshot_is_not_patched_from_its_audit_rows() {
    const DB: &str = "race_truncate_members";
    let mut admin = org(DB);
    admin
        .batch_execute(
            "SELECT crm.set_sharing_default('Leads', 'private'); SELECT crm.create_group('G');
             SELECT crm.add_sharing_rule('Leads', 'group', 'G', 'role', 'Rep', 'read');",
        )
        .unwrap();
    let bob_reads = || -> i64 {
        let mut app = connect(DB, APP);
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT crm.set_user('bob')", &[]).unwrap();
        tx.query_one("SELECT count(*) FROM leads WHERE id = 1", &[]).unwrap().get(0)
    };
    assert_eq!(bob_reads(), 0);
    let mut truncator = connect(DB, "postgres");
    let mut old = truncator.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start().unwrap();
    assert_eq!(old.query_one("SELECT count(*) FROM crm.group_members", &[]).unwrap().get::<_, i64>(0), 0);
    admin.batch_execute("SELECT crm.add_group_member('G', 'user', 'alice')").unwrap();
    assert_eq!(bob_reads(), 1, "alice in G: the rule shares her lead with bob");
    old.batch_execute("TRUNCATE crm.group_members").unwrap();
    old.commit().unwrap();
    assert_eq!(admin.query_one("SELECT count(*) FROM crm.group_members", &[]).unwrap().get::<_, i64>(0), 0);
    assert_eq!(bob_reads(), 0, "the truncate removed alice's membership from the published model too");
    let patched: Vec<u8> = admin.query_one("SELECT bytes FROM crm.compiled_model", &[]).unwrap().get(0);
    admin.batch_execute("UPDATE crm.roles SET name = name WHERE false").unwrap();
    let compiled: Vec<u8> = admin.query_one("SELECT bytes FROM crm.compiled_model", &[]).unwrap().get(0);
    assert!(patched == compiled, "the truncate's commit published other bytes than a compile of the same catalog");
}

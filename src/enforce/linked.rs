//! Conversations keep the owner of the lead or contact they link to (`linked_owner`,
//! DESIGN §3.5), so that their policy stays a constant filter over their own columns.
//!
//! - `crm.linked_record_owner(tbl, id)`, called by the conversation's own trigger, reads
//!   the owner as the writer sees the record (so a conversation links only to a record its
//!   writer can read, and the copy cannot be forged);
//! - `crm.push_linked_owner()`, on every protected Leads and Contacts table (AFTER UPDATE
//!   and AFTER DELETE, once per statement, over the transition tables), gives records' new
//!   owners to their conversations at once, and unlinks them when the records are deleted.
//!   It writes crm.conversations as the catalog role, which owns that table; it takes no
//!   arguments and reads the table's key and owner columns from the catalog, so attaching it
//!   anywhere else can only ever push a record's true owner.
//! - `crm.copy_conversation_visibility(ids)` and `crm.date_conversations(ids)`, called by
//!   the statement triggers of conversations and messages, keep messages' copies and
//!   conversations' dates, as the catalog role.
//!
//! The first two take the copy lock; all work under the latest snapshot (see
//! `catalog::latest`).

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use super::rows::trigger_table;
use super::rows::{require_firing, Firing};
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::catalog::tables::{existing, primary_key_of};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache;

/// The owner of record `id` of `tbl`, a protected Leads or Contacts table, as the caller
/// can read it; an error when the caller cannot.
#[pg_extern(volatile, parallel_unsafe)]
fn linked_record_owner(tbl: pg_sys::Oid, id: i64) -> i64 {
    record_owner(tbl, id).or_raise()
}

fn record_owner(tbl: pg_sys::Oid, id: i64) -> CrmResult<i64> {
    let m = cache::current(false)?;
    let table = existing(tbl)?;
    let Some(owner_column) = m.owner_column_of(tbl).filter(|_| m.links_conversations(tbl)).map(str::to_string) else {
        return Err(CrmError::invalid(format!("{table} is not a protected table of a module conversations link to"))
            .with_hint("Conversations link to records of the modules crm.modules marks links_conversations (Leads and Contacts as shipped), in a table protected with crm.protect()."));
    };
    let Some((key, _)) = primary_key_of(tbl) else {
        return Err(CrmError::not_supported(format!("{table} has no single-column primary key for conversations to point at")));
    };
    lock_copies_of(tbl, false);
    let sql = format!("SELECT {} FROM {table} WHERE {} = $1", quote_identifier(&owner_column), quote_identifier(&key));
    let (found, owner) = privileged::as_invoker(|| latest::execute(&sql, &[(pg_sys::INT8OID, pg_sys::Datum::from(id), false)], true))?;
    match (found, owner) {
        (0, _) | (_, None) => Err(CrmError::denied(format!("no record of {table} with {key} = {id} is visible to you"))
            .with_hint("A conversation can be linked only to a lead or contact you can read.")),
        (_, Some(owner)) => Ok(owner),
    }
}

#[pg_trigger]
fn push_linked_owner<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    require_firing(trigger, "crm.push_linked_owner()", Firing::AfterChangeStatement);
    let data = trigger.trigger_data();
    let tbl = trigger_table(trigger);
    let data = data as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    let update = trigger.event().fired_by_update();
    let pushed: CrmResult<()> = (|| {
        let m = cache::current(false)?;
        if !m.links_conversations(tbl) {
            return Ok(());
        }
        let (Some(owner), Some((key, key_type))) = (m.owner_column_of(tbl), primary_key_of(tbl)) else { return Ok(()) };
        // Conversations link by a bigint id: a table with another key has none linked.
        if !matches!(key_type, pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID) {
            return Ok(());
        }
        let (o, k) = (quote_identifier(owner), quote_identifier(&key));
        // The records of this statement whose owner changed (or that are gone); none: no push.
        let changed = if update {
            format!("SELECT count(*) FROM crm_old AS o JOIN crm_new AS n ON n.{k} = o.{k} WHERE o.{o} IS DISTINCT FROM n.{o}")
        } else {
            "SELECT count(*) FROM crm_old".to_string()
        };
        if latest::execute_in_trigger(data, &changed, &[], true)?.1 == Some(0) {
            return Ok(());
        }
        // Locked before looking for linked conversations: one being linked right now waits.
        lock_copies_of(tbl, true);
        let this = [(pg_sys::REGCLASSOID, pg_sys::Datum::from(tbl), false)];
        const ANY_LINKED: &str = "SELECT count(*) FROM (SELECT FROM crm.conversations WHERE linked_table = $1 LIMIT 1) AS l";
        if privileged::as_catalog_role(|| latest::execute(ANY_LINKED, &this, true))?.1 == Some(0) {
            return Ok(());
        }
        let sql = if update {
            format!(
                "UPDATE crm.conversations AS c SET linked_owner = n.{o} FROM crm_new AS n
                 WHERE c.linked_table = $1 AND c.linked_id = n.{k} AND c.linked_owner IS DISTINCT FROM n.{o}"
            )
        } else {
            format!("UPDATE crm.conversations AS c SET linked_table = NULL, linked_id = NULL FROM crm_old AS o WHERE c.linked_table = $1 AND c.linked_id = o.{k}")
        };
        privileged::as_catalog_role(|| latest::execute_in_trigger(data, &sql, &this, false))?;
        Ok(())
    })();
    pushed.or_raise();
    Ok(None)
}

/// Copy the visibility columns of conversations `ids` onto their messages, as the catalog
/// role, under the latest snapshot: a message committed after a REPEATABLE READ reassignment
/// began, which it waited for (see crm.message_check), is reached too. It only ever makes
/// messages agree with their conversations, so anyone may call it (crm.conversation_push does).
#[pg_extern(volatile, parallel_unsafe)]
fn copy_conversation_visibility(ids: Vec<i64>) {
    const COPY: &str = "UPDATE crm.messages m
        SET crm_assigned_to = c.assigned_to, crm_linked_owner = c.linked_owner, crm_is_new = c.is_new, crm_archived_by = c.archived_by
        FROM crm.conversations c JOIN unnest($1::bigint[]) AS i (id) ON i.id = c.id
        WHERE m.conversation_id = c.id
          AND (m.crm_assigned_to, m.crm_linked_owner, m.crm_is_new, m.crm_archived_by)
              IS DISTINCT FROM (c.assigned_to, c.linked_owner, c.is_new, c.archived_by)";
    let ids = ids.into_datum().expect("an array datum");
    privileged::as_catalog_role(|| latest::execute(COPY, &[(pg_sys::INT8ARRAYOID, ids, false)], false)).or_raise();
}

/// Date conversations `ids` by their newest message, as the catalog role. It only ever sets
/// what the messages say, so anyone may call it (crm.message_bump does).
#[pg_extern(volatile, parallel_unsafe)]
fn date_conversations(ids: Vec<i64>) {
    const DATE: &str = "UPDATE crm.conversations c SET last_message_at = m.latest
        FROM (SELECT m.conversation_id, max(m.sent_at) AS latest
              FROM crm.messages m JOIN unnest($1::bigint[]) AS i (id) ON i.id = m.conversation_id GROUP BY m.conversation_id) m
        WHERE c.id = m.conversation_id AND c.last_message_at < m.latest";
    let ids = ids.into_datum().expect("an array datum");
    privileged::as_catalog_role(|| latest::execute(DATE, &[(pg_sys::INT8ARRAYOID, ids, false)], false)).or_raise();
}

/// Forget relations that no longer exist: protected tables (and the conversations linked to
/// their records) and secure views, as the catalog role. Called by the event trigger on
/// sql_drop; it only removes references to relations that are gone, so anyone may call it.
#[pg_extern(volatile, parallel_unsafe)]
fn forget_missing_relations() {
    const FORGET: [&str; 3] = [
        "UPDATE crm.conversations SET linked_table = NULL, linked_id = NULL
         WHERE linked_table IN (SELECT p.tbl FROM crm.protected_tables p WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl))",
        "DELETE FROM crm.protected_tables p WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)",
        "DELETE FROM crm.secure_views v WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = v.view)",
    ];
    privileged::as_catalog_role(|| {
        for sql in FORGET {
            latest::execute(sql, &[], false)?;
        }
        Ok(())
    })
    .or_raise();
}

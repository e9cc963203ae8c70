//! Conversations keep the owner of the lead or contact they link to (`linked_owner`,
//! DESIGN §3.5), so that their policy stays a constant filter over their own columns.
//!
//! - `crm.linked_record_owner(tbl, id)`, called by the conversation's own trigger, reads
//!   the owner as the writer sees the record (so a conversation links only to a record its
//!   writer can read, and the copy cannot be forged);
//! - `crm.push_linked_owner()`, on every protected Leads and Contacts table, gives the
//!   record's new owner to its conversations at once, and unlinks them when it is deleted.
//!   It writes crm.conversations as the catalog role, which owns that table; it takes no
//!   arguments and reads the table's key and owner columns from the catalog, so attaching it
//!   anywhere else can only ever push a record's true owner.
//! Both take the copy lock and work under the latest snapshot (see `catalog::latest`).
//! - `crm.copy_conversation_visibility(ids)`, called by the conversations' statement trigger
//!   as the catalog role, copies their visibility onto their messages under the latest
//!   snapshot; clients may not execute it.

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use super::rows::{self, require_firing, same, text_of, value, Firing};
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::catalog::tables::{existing, primary_key_of};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache;

/// The modules whose records conversations link to.
fn links_conversations(module: Option<&str>) -> bool {
    matches!(module, Some("Leads" | "Contacts"))
}

/// The owner of record `id` of `tbl`, a protected Leads or Contacts table, as the caller
/// can read it; an error when the caller cannot.
#[pg_extern(volatile, parallel_unsafe)]
fn linked_record_owner(tbl: pg_sys::Oid, id: i64) -> i64 {
    record_owner(tbl, id).or_raise()
}

fn record_owner(tbl: pg_sys::Oid, id: i64) -> CrmResult<i64> {
    let m = cache::current(false)?;
    let table = existing(tbl)?;
    let Some(owner_column) = m.owner_column_of(tbl).filter(|_| links_conversations(m.module_of(tbl))).map(str::to_string) else {
        return Err(CrmError::invalid(format!("{table} is not a protected Leads or Contacts table"))
            .with_hint("Conversations link to a lead or a contact in a table protected with crm.protect()."));
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

/// A key value as the bigint conversations store in `linked_id`, if it is one.
fn as_linked_id(value: pg_sys::Datum, typ: pg_sys::Oid) -> Option<i64> {
    match typ {
        pg_sys::INT8OID => Some(value.value() as i64),
        pg_sys::INT4OID => Some(value.value() as i32 as i64),
        pg_sys::INT2OID => Some(value.value() as i16 as i64),
        _ => text_of(value, typ).parse().ok(),
    }
}

#[pg_trigger]
fn push_linked_owner<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    let rel = data.tg_relation;
    // SAFETY: the trigger's relation is open for the whole call.
    let tbl = unsafe { (*rel).rd_id };
    require_firing(trigger, "crm.push_linked_owner()", Firing::AfterChange);
    // SAFETY: the trigger's relation and tuples are valid for the whole call; attribute
    // numbers come from the relation's own descriptor.
    let pushed: CrmResult<()> = (|| unsafe {
        let m = cache::current(false)?;
        if !links_conversations(m.module_of(tbl)) {
            return Ok(());
        }
        let Some((owner_att, owner_col)) = m.owner_column_of(tbl).and_then(|c| rows::column(rel, c)) else { return Ok(()) };
        let Some((key, key_type)) = primary_key_of(tbl) else { return Ok(()) };
        let Some((key_att, _)) = rows::column(rel, &key) else { return Ok(()) };
        let desc = (*rel).rd_att;
        let key_value = value(data.tg_trigtuple, desc, key_att);
        let Some(id) = (!key_value.1).then(|| as_linked_id(key_value.0, key_type)).flatten() else { return Ok(()) };
        let (sql, owner) = if trigger.event().fired_by_delete() {
            ("UPDATE crm.conversations SET linked_table = NULL, linked_id = NULL WHERE linked_table = $1 AND linked_id = $2", (pg_sys::Datum::from(0), true))
        } else {
            let (old, new) = (value(data.tg_trigtuple, desc, owner_att), value(data.tg_newtuple, desc, owner_att));
            if same(old, new, owner_col) {
                return Ok(());
            }
            ("UPDATE crm.conversations SET linked_owner = $3 WHERE linked_table = $1 AND linked_id = $2", new)
        };
        lock_copies_of(tbl, true);
        let args = [(pg_sys::REGCLASSOID, pg_sys::Datum::from(tbl), false), (pg_sys::INT8OID, pg_sys::Datum::from(id), false), (pg_sys::INT8OID, owner.0, owner.1)];
        let args = if trigger.event().fired_by_delete() { &args[..2] } else { &args[..] };
        privileged::as_catalog_role(|| latest::execute(sql, args, false))?;
        Ok(())
    })();
    pushed.or_raise();
    Ok(None)
}

/// Copy the visibility columns of conversations `ids` onto their messages. Run by
/// `crm.conversation_push()` as crm_access_catalog (EXECUTE is revoked from everyone else),
/// under the latest snapshot: a message committed after a REPEATABLE READ reassignment
/// began, which it waited for (see crm.message_check), is reached too.
#[pg_extern(volatile, parallel_unsafe)]
fn copy_conversation_visibility(ids: Vec<i64>) {
    const COPY: &str = "UPDATE crm.messages m
        SET crm_assigned_to = c.assigned_to, crm_linked_owner = c.linked_owner, crm_is_new = c.is_new, crm_archived_by = c.archived_by
        FROM crm.conversations c
        WHERE c.id = ANY($1) AND m.conversation_id = c.id
          AND (m.crm_assigned_to, m.crm_linked_owner, m.crm_is_new, m.crm_archived_by)
              IS DISTINCT FROM (c.assigned_to, c.linked_owner, c.is_new, c.archived_by)";
    let ids = ids.into_datum().expect("an array datum");
    privileged::as_invoker(|| latest::execute(COPY, &[(pg_sys::INT8ARRAYOID, ids, false)], false)).or_raise();
}

//! Record shares at run time and at plan time (DESIGN §9, issue 26): the records of a protected
//! table shared with the acting user, by the table's key (`crm.shared`, a branch of the read
//! and edit policies), the check that a write through an edit share keeps the record's owner
//! (`crm.shared_write`), and the trigger that removes a record's shares when its owner or key
//! changes or it is deleted (`crm.forget_shares`).
//!
//! The planner folds `crm.shared(tbl, action, key)` into `key = ANY('{...}')` in the key's own
//! type (the `OneOf` of restriction rules, `restrictions::Kind`), `false` for a user with no
//! share there, which the planner drops from the policy's OR: a user nothing is shared with
//! gets the plan they got before shares existed.

use std::rc::Rc;

use crm_model::{Action, Filter, OwnerId, Row, Value};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{pg_sys, AnyElement, FromDatum};

use super::opened;
use super::restrictions::Kind;
use super::rows::{self, require_firing, trigger_table, Firing};
use crate::catalog::latest;
use crate::catalog::privileged;
use crate::catalog::tables::primary_key_of;
use crate::error::{CrmResult, OrRaise};
use crate::session::{cache, identity, shares};

pub use crate::session::shares::KEY;

/// Where a policy's share branch on `tbl` looks for keys: the records of `tbl` itself, or (a
/// linked child table) its parent records, whose shares reach it (DESIGN §9).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Through {
    Own,
    Parent,
}

/// The keys shared with the acting user for `action` (read or edit) that count now, of `tbl`'s
/// records or of its parent records (`through`), or `None` when shares cannot give them anything
/// on `tbl` (`Model::shares_apply` on `tbl`'s module: shares never go beyond its privileges;
/// for a parent's shares, the child's module directly related to the parent's; someone who
/// cannot act; our own statements with the rows opened; a broken catalog). A parent's keys are
/// the ones its own policy folds: one memo entry serves both.
fn keys_for(tbl: pg_sys::Oid, action: Action, planning: bool, through: Through) -> CrmResult<Option<(Rc<shares::Shared>, OwnerId)>> {
    if opened::rows_opened(tbl) || !matches!(action, Action::Read | Action::Edit) {
        return Ok(None);
    }
    let Ok(m) = cache::current(planning) else {
        crate::session::plans::failed_closed();
        return Ok(None);
    };
    let Some(module) = m.module_of(tbl) else { return Ok(None) };
    let source = match through {
        Through::Own => tbl,
        Through::Parent => match (m.parent_module_of(tbl), m.link_of(tbl)) {
            (Some(parent_module), Some(link)) if m.model.shares_reach_children(parent_module, module) => pg_sys::Oid::from(link.parent),
            _ => return Ok(None),
        },
    };
    let Ok(user) = identity::acting_user(&m)? else { return Ok(None) };
    if !m.model.shares_apply(user.owner_id, module, action) {
        return Ok(None);
    }
    Ok(Some((shares::shared_with(&m, user.owner_id, source, action)?, user.owner_id)))
}

fn shared_keys(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Option<(Rc<shares::Shared>, OwnerId)>> {
    keys_for(tbl, action, planning, Through::Own)
}

/// Which records of child table `tbl` the acting user reaches for `action` through shares of
/// their parent records, by the link column's value.
pub fn parent_shared(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    Ok(match keys_for(tbl, action, planning, Through::Parent)? {
        Some((s, _)) => s.filter.clone(),
        None => Rc::new(Filter::Const(false)),
    })
}

/// Which records of `tbl` the acting user reaches for `action` through shares, by key.
pub fn shared(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    Ok(match shared_keys(tbl, action, planning)? {
        Some((s, _)) => s.filter.clone(),
        None => Rc::new(Filter::Const(false)),
    })
}

/// Whether the acting user has any record of `tbl` shared for editing (else `crm.shared_write`
/// is `false` and the planner drops it).
pub fn edits_shared(tbl: pg_sys::Oid, planning: bool) -> CrmResult<bool> {
    Ok(shared_keys(tbl, Action::Edit, planning)?.is_some_and(|(s, _)| !s.keys.is_empty()))
}

/// A record key as shares hold it: the key's text as its type writes it.
fn key_text(key: &AnyElement) -> Option<String> {
    let kind = Kind::of(key.oid())?;
    // SAFETY: a non-null datum of the argument's own type, which `kind` is of.
    unsafe { kind.text(key.datum()) }
}

struct KeyRow<'a>(&'a str);

impl Row for KeyRow<'_> {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        (column == KEY).then_some(Value::Text(Some(self.0)))
    }
}

/// The share branch of the read and edit policies: whether the record whose key is `key` is
/// shared with the acting user for `action`. The planner replaces the call
/// (`shared_support`); as written it looks the key up.
#[pg_extern(
    sql = "CREATE FUNCTION crm.shared(tbl regclass, action text, key anyelement) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.shared_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::shared_support]
)]
fn shared_fn(tbl: Option<pg_sys::Oid>, action: Option<&str>, key: Option<AnyElement>) -> bool {
    let (Some(tbl), Some(Ok(action)), Some(key)) = (tbl, action.map(str::parse::<Action>), key) else { return false };
    let Some(text) = key_text(&key) else { return false };
    shared(tbl, action, false).or_raise().admits(&KeyRow(&text))
}

/// The parent-share branch of a linked child table's read and edit policies (and of its edit
/// WITH CHECK: the written record stays under a parent shared for editing): whether the parent
/// record whose key is `parent_key` (the child's link column) is shared with the acting user
/// for `action`, and `tbl`'s module is directly related to the parent's. The planner replaces
/// the call (`parent_shared_support`); as written it looks the key up. A receiver's change of
/// the child's owner is refused by `shares_follow_record`, as for a share of the record itself.
#[pg_extern(
    sql = "CREATE FUNCTION crm.parent_shared(tbl regclass, action text, parent_key anyelement) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.parent_shared_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::parent_shared_support]
)]
fn parent_shared_fn(tbl: Option<pg_sys::Oid>, action: Option<&str>, parent_key: Option<AnyElement>) -> bool {
    let (Some(tbl), Some(Ok(action)), Some(key)) = (tbl, action.map(str::parse::<Action>), parent_key) else { return false };
    let Some(text) = key_text(&key) else { return false };
    parent_shared(tbl, action, false).or_raise().admits(&KeyRow(&text))
}

/// The share branch of the edit policy's WITH CHECK: the written record is shared with the
/// acting user for editing, and keeps the owner it had when it was shared (a share lets its
/// receivers edit a record, never give it away). The planner drops it for a user with no record
/// of the table shared for editing (`shared_write_support`).
#[pg_extern(
    sql = "CREATE FUNCTION crm.shared_write(tbl regclass, key anyelement, owner bigint) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.shared_write_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::shared_write_support]
)]
fn shared_write(tbl: Option<pg_sys::Oid>, key: Option<AnyElement>, owner: Option<i64>) -> bool {
    let (Some(tbl), Some(key), Some(owner)) = (tbl, key, owner) else { return false };
    let Some(text) = key_text(&key) else { return false };
    match shared_keys(tbl, Action::Edit, false).or_raise() {
        Some((s, _)) => s.keys.get(&text) == Some(&owner),
        None => false,
    }
}

/// A record's shares follow the record (DESIGN §9):
/// - after an UPDATE that changed a record's owner, key or (a linked table) parent record, for
///   each row (the trigger's WHEN condition, on the row as written: a table owner's BEFORE
///   trigger may have changed it, red team of issue 26): such a change needs edit access to the
///   record by the writer's own rights (a share, or a share of the parent, lets its receivers
///   edit a record's fields, never give it away, rename it or move it under another parent:
///   the edit policy admits the old row through the share); then, for a new owner or key, the
///   record's shares go (a change of owner removes a record's manual shares);
/// - after a DELETE, once per statement, the shares of every deleted record go (a new record
///   that later takes the key is not shared): one statement for a bulk delete.
/// As the catalog role, whoever wrote, under the latest snapshot: a share that committed while
/// this statement waited for the record's lock (`crm.share_record` holds it) is seen and goes.
#[pg_trigger]
fn shares_follow_record<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let e = trigger.event();
    let (row_update, statement_delete) = (e.fired_for_row() && e.fired_after() && e.fired_by_update(), e.fired_for_statement() && e.fired_after() && e.fired_by_delete());
    if !(row_update || statement_delete) {
        crate::error::CrmError::prerequisite("crm.shares_follow_record() fires after UPDATE for each row, or after DELETE for each statement").raise();
    }
    if statement_delete {
        require_firing(trigger, "crm.shares_follow_record()", Firing::AfterChangeStatement);
    }
    let tbl = trigger_table(trigger);
    let data = trigger.trigger_data();
    let raw = data as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    let this = (pg_sys::REGCLASSOID, pg_sys::Datum::from(tbl), false);
    // SAFETY: the trigger's relation and tuples are valid for the whole call; attribute
    // numbers come from the relation's own descriptor.
    let followed: CrmResult<()> = (|| unsafe {
        let m = cache::current(false)?;
        let (Some(owner), Some((key, _))) = (m.owner_column_of(tbl), primary_key_of(tbl)) else { return Ok(()) };
        if statement_delete {
            // Nothing to look for in a table without shares (no cache: a share committed while
            // this statement waited for a record's lock must be seen).
            const ANY_SHARED: &str = "SELECT count(*) FROM (SELECT FROM crm.shares WHERE tbl = $1 LIMIT 1) AS s";
            if privileged::as_catalog_role(|| latest::execute(ANY_SHARED, &[this], true))?.1 == Some(0) {
                return Ok(());
            }
            let sql = format!("DELETE FROM crm.shares AS s USING crm_old AS o WHERE s.tbl = $1 AND s.record_id = o.{}::text", quote_identifier(&key));
            privileged::as_catalog_role(|| latest::execute_in_trigger(raw, &sql, &[this], false))?;
            return Ok(());
        }
        let rel = data.tg_relation;
        let desc = (*rel).rd_att;
        let (Some((owner_att, owner_col)), Some((key_att, key_col))) = (rows::column(rel, owner), rows::column(rel, &key)) else { return Ok(()) };
        let (old, new) = (data.tg_trigtuple, data.tg_newtuple);
        let changed = |att: i32, col| !rows::same(rows::value(old, desc, att), rows::value(new, desc, att), col);
        let owner_changed = changed(owner_att, owner_col);
        let key_changed = changed(key_att, key_col);
        // The parent record: moved to another, the record leaves its parent's shares and
        // takes another's (red team of issue 26, round 2: a receiver moved a child under a
        // parent they had shared with themselves, or one a rule gave them, and kept it).
        let link_changed = m.link_of(tbl).and_then(|l| rows::column(rel, &l.column)).is_some_and(|(a, col)| changed(a, col));
        if (owner_changed || key_changed || link_changed) && !opened::rows_opened(tbl) && crate::catalog::tables::row_security_applies(tbl, pg_sys::InvalidOid) {
            let old_owner = rows::value(old, desc, owner_att);
            let old_owner = (!old_owner.1).then(|| i64::from_datum(old_owner.0, false)).flatten();
            let own = super::access(tbl, Action::Edit, false)?.admits(&crm_model::Owned(old_owner))
                || (m.link_of(tbl).is_some() && {
                    let parent_owner = rows::column(rel, super::parent_owner::KEPT).map(|(a, _)| rows::value(old, desc, a));
                    let parent_owner = parent_owner.filter(|v| !v.1).and_then(|v| i64::from_datum(v.0, false));
                    super::access_via_parent(tbl, Action::Edit, false)?.admits(&crm_model::Owned(parent_owner))
                });
            if !own && owner_changed {
                return Err(crate::error::CrmError::denied("permission denied to change the owner of a record shared with you")
                    .with_detail("A record share lets its receivers read or edit the record, not give it to another owner.")
                    .with_hint("Ask the record's owner, a user above them, or an administrator."));
            }
            if !own {
                return Err(crate::error::CrmError::denied("permission denied to change the key or the parent record of a record shared with you")
                    .with_detail("A record share, or a share of its parent record, lets its receivers edit the record's fields, not move it or rename it.")
                    .with_hint("Ask the record's owner, a user above them, or an administrator."));
            }
        }
        if !(owner_changed || key_changed) {
            return Ok(());
        }
        let (k, null) = rows::value(old, desc, key_att);
        let Some(text) = (if null { None } else { Kind::of(key_col.atttypid).and_then(|kind| kind.text(k)) }) else { return Ok(()) };
        let args = [this, (pg_sys::TEXTOID, text.as_str().into_datum().expect("text"), false)];
        privileged::as_catalog_role(|| latest::execute("DELETE FROM crm.shares WHERE tbl = $1 AND record_id = $2", &args, false))?;
        Ok(())
    })();
    followed.or_raise();
    Ok(None)
}

/// Every share of `tbl`'s records (a TRUNCATE empties it).
pub fn forget_all(tbl: pg_sys::Oid) -> CrmResult<()> {
    let this = [(pg_sys::REGCLASSOID, pg_sys::Datum::from(tbl), false)];
    privileged::as_catalog_role(|| latest::execute("DELETE FROM crm.shares WHERE tbl = $1", &this, false))?;
    Ok(())
}

//! The audit log (DESIGN §8): one row of `crm.audit_log` per API call that changed the
//! catalog, and one per statement that changed it directly, in the same transaction.
//!
//! Statement triggers on every catalog table (sql/audit.sql) hand over the rows each
//! statement inserted, updated or deleted (`note`). Inside an API call they are gathered
//! and written as the call's one row when it returns (`Call::finish`); a call made inside
//! another (by a trigger its writes fire) gets its own row. Outside any call (a superuser's
//! direct write, the event trigger forgetting a dropped table) the statement gets its own
//! row, except a COPY (what pg_restore loads is history the log already holds). An API call
//! that errors leaves nothing, and neither does a subtransaction rolled back: what it noted
//! is dropped (`subtransaction_aborted`).
//!
//! Each change keeps whole rows, before and after, so the catalog at any logged moment can
//! be rebuilt by undoing the later entries.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use serde_json::{json, Value};

use super::spi::on_catalog;
use crate::error::CrmResult;

/// What an API call records: its name, what it is about, and its arguments.
pub struct Audit {
    operation: &'static str,
    target: Option<String>,
    args: Value,
}

impl Audit {
    pub fn new(operation: &'static str, target: Option<String>, args: Value) -> Self {
        Audit { operation, target, args }
    }
}

/// `audit!("create_role", name, parent)`: the call's name (as SQL calls it), then its
/// arguments by their SQL names; the first names the target.
#[macro_export]
macro_rules! audit {
    ($op:expr) => {
        $crate::catalog::audit::Audit::new($op, None, serde_json::json!({}))
    };
    ($op:expr, $first:ident $(, $arg:ident)*) => {
        $crate::catalog::audit::Audit::new(
            $op,
            $crate::catalog::audit::target_of(&serde_json::json!($first)),
            serde_json::json!({ stringify!($first): $first $(, stringify!($arg): $arg)* }),
        )
    };
}

/// A target as text: strings as they are, other values as JSON, NULL as none.
pub fn target_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

thread_local! {
    /// One frame per API call in progress, innermost last: the changes noted while it is the
    /// innermost, each with the subtransaction that made it. A call made inside another (a
    /// table owner's trigger fired by the outer call's writes may call the API) gets its own
    /// entry; changes of a subtransaction rolled back are dropped (red team).
    static FRAMES: RefCell<Vec<Vec<(pgrx::pg_sys::SubTransactionId, Value)>>> = const { RefCell::new(Vec::new()) };
}

/// A subtransaction was rolled back: what it noted (and what its own subtransactions
/// noted, whose ids are higher) never happened.
pub fn subtransaction_aborted(sub: pgrx::pg_sys::SubTransactionId) {
    FRAMES.with(|f| f.borrow_mut().iter_mut().for_each(|frame| frame.retain(|(s, _)| *s < sub)));
}

/// The transaction ended: no call survives it.
pub fn transaction_ended() {
    FRAMES.with(|f| f.borrow_mut().clear());
}

/// An API call in progress. Dropped without `finish` (an error unwinding), it records nothing.
pub struct Call {
    audit: Option<Audit>,
    actor: Option<String>,
    depth: usize,
}

impl Call {
    /// Start a call by `actor` (the acting user's name, once the caller is authorised).
    pub fn start(audit: Audit, actor: Option<String>) -> Call {
        let depth = FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            f.push(Vec::new());
            f.len()
        });
        Call { audit: Some(audit), actor, depth }
    }

    /// The call succeeded: it writes its entry if it changed the catalog (or, with
    /// `always`, in any case).
    pub fn finish(mut self, always: bool) -> CrmResult<()> {
        let audit = self.audit.take().expect("a call finishes once");
        let changes: Vec<Value> = self.pop().into_iter().map(|(_, c)| c).collect();
        if changes.is_empty() && !always {
            return Ok(());
        }
        let details = json!({ "args": audit.args, "changes": changes });
        append(self.actor.take(), audit.operation, audit.target, details)
    }

    /// This call's frame (and any left above it by calls that never finished).
    fn pop(&self) -> Vec<(pgrx::pg_sys::SubTransactionId, Value)> {
        FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < self.depth {
                return Vec::new();
            }
            f.truncate(self.depth);
            f.pop().unwrap_or_default()
        })
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.audit.is_some() {
            self.pop();
        }
    }
}

/// Run `f` as an audited API call by `actor` (the caller already authorised;
/// `api::authorize::audited` names the acting user).
pub fn audited_by<R>(audit: Audit, actor: Option<String>, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let call = Call::start(audit, actor);
    let r = f()?;
    call.finish(false)?;
    Ok(r)
}

/// One statement wrote catalog table `table` (`op` its command; `old` and `new` the rows it
/// removed and added, as JSON arrays, NULL for none), with `actor` acting; `restored` when
/// the write is the client's own COPY FROM into that table (see below).
pub fn note(table: &str, op: &str, old: Option<Value>, new: Option<Value>, actor: Option<String>, restored: bool) -> CrmResult<()> {
    // Statement triggers fire for statements that touched no row (an `ON CONFLICT DO NOTHING`
    // that found one): nothing changed, nothing to log.
    let rows = |v: &Option<Value>| v.as_ref().and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if SUPPRESSED.get() || (!rows(&old) && !rows(&new)) {
        return Ok(());
    }
    // An UPDATE that wrote every row as it was (a sharing default set to the level it has)
    // changed nothing either. Transition tables list an UPDATE's rows in the same order.
    if op == "UPDATE" && old == new {
        return Ok(());
    }
    let change = json!({ "table": table, "op": op, "old": old.unwrap_or(json!([])), "new": new.unwrap_or(json!([])) });
    // SAFETY: reads the current subtransaction's id.
    let sub = unsafe { pgrx::pg_sys::GetCurrentSubTransactionId() };
    let change = FRAMES.with(|f| match f.borrow_mut().last_mut() {
        Some(frame) => {
            frame.push((sub, change));
            None
        }
        None => Some(change),
    });
    let Some(change) = change else { return Ok(()) };
    // A direct write, outside any API call: a load by COPY (pg_restore) only reproduces what
    // the log it restores already holds, and logging it would undo the restored catalog when
    // a past one is rebuilt (`history`). Only the client's own COPY FROM into this very table
    // is that: a change made by code a COPY runs (`COPY (SELECT f()) TO ...`, a trigger) is
    // logged (issue 24, finding 9).
    if restored {
        return Ok(());
    }
    append(actor, op, Some(format!("crm.{table}")), json!({ "changes": [change] }))
}

fn append(actor: Option<String>, operation: &str, target: Option<String>, details: Value) -> CrmResult<()> {
    // pg_restore loads the log (its name sorts first) before the catalog tables, whose loading
    // is logged too, and sets the sequence only after all data: so an id is never below what
    // the log already holds.
    // Dated again, in commit order, just before the transaction commits (`commits`).
    let id = on_catalog(|c| {
        super::spi::insert_returning_id(
            c,
            "INSERT INTO crm.audit_log (id, actor, operation, target, details)
             SELECT greatest(nextval('crm.audit_log_id_seq'), coalesce(max(id), 0) + 1), $1, $2, $3, $4 FROM crm.audit_log
             RETURNING id",
            &[actor.into(), operation.into(), target.into(), pgrx::JsonB(details).into()],
        )
    })?;
    super::commits::appended(id);
    Ok(())
}

thread_local! {
    static PRUNING: Cell<bool> = const { Cell::new(false) };
    /// Rebuilding a past catalog (`history`): its undo is rolled back, and is no change.
    static SUPPRESSED: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is a logical replication worker (applying a subscription's
/// changes, or copying a table's rows when it starts).
pub fn applied_by_subscription() -> bool {
    // SAFETY: reads a flag of this backend.
    unsafe { pg_sys::IsLogicalWorker() }
}

/// Whether changes are not being noted (`suppressed`).
pub fn is_suppressed() -> bool {
    SUPPRESSED.get()
}

/// Run `f` with no change noted.
pub fn suppressed<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SUPPRESSED.set(self.0);
        }
    }
    let _restore = Restore(SUPPRESSED.replace(true));
    f()
}

/// Whether `crm.prune_audit_log` is deleting entries right now (the append-only trigger lets
/// exactly that through).
pub fn pruning() -> bool {
    PRUNING.get()
}

/// Delete the entries older than `before` (the caller is a superuser, acting as `actor`); how
/// many went.
pub fn prune(before: pgrx::datum::TimestampWithTimeZone, actor: Option<String>) -> CrmResult<i64> {
    struct Pruning;
    impl Drop for Pruning {
        fn drop(&mut self) {
            PRUNING.set(false);
        }
    }
    let call = Call::start(crate::audit!("prune_audit_log", before), actor);
    let deleted = {
        PRUNING.set(true);
        let _pruning = Pruning;
        on_catalog(|c| {
            // Checkpoints before the moment can no longer be asked about (`history`), but the
            // first one after it needs each table's latest copy up to it.
            c.update(
                "WITH kept AS (SELECT min(id) AS id FROM crm.audit_checkpoints WHERE at >= $1),
                      needed AS (SELECT DISTINCT ON (v.tbl) v.tbl, v.checkpoint_id FROM crm.audit_checkpoint_tables v, kept
                                 WHERE v.checkpoint_id <= kept.id ORDER BY v.tbl, v.checkpoint_id DESC)
                 DELETE FROM crm.audit_checkpoint_tables v USING crm.audit_checkpoints k
                 WHERE k.id = v.checkpoint_id AND k.at < $1
                   AND NOT EXISTS (SELECT FROM needed n WHERE n.tbl = v.tbl AND n.checkpoint_id = v.checkpoint_id)",
                None,
                &[before.into()],
            )?;
            c.update(
                "DELETE FROM crm.audit_checkpoints k WHERE k.at < $1
                   AND NOT EXISTS (SELECT FROM crm.audit_checkpoint_tables v WHERE v.checkpoint_id = k.id)",
                None,
                &[before.into()],
            )?;
            let gone = c.update("WITH d AS (DELETE FROM crm.audit_log WHERE at < $1 RETURNING 1) SELECT count(*) FROM d", None, &[before.into()])?;
            Ok(gone.first().get_one::<i64>()?.unwrap_or(0))
        })?
    };
    FRAMES.with(|f| {
        if let Some(frame) = f.borrow_mut().last_mut() {
            frame.push((0, json!({ "table": "audit_log", "op": "DELETE", "deleted": deleted })));
        }
    });
    call.finish(true)?;
    Ok(deleted)
}

//! The audit log (DESIGN §8): one row of `crm.audit_log` per API call that changed the
//! catalog, and one per statement that changed it directly, in the same transaction.
//!
//! Statement triggers on every catalog table (sql/audit.sql) hand over the rows each
//! statement inserted, updated or deleted (`note`). Inside an API call they are gathered
//! and written as the call's one row when it returns (`Call::finish`); outside one (a
//! superuser's direct write, pg_restore, the event trigger forgetting a dropped table) the
//! statement gets its own row. An API call that errors leaves nothing: its transaction or
//! subtransaction is aborted, and its gathered changes are dropped with it.
//!
//! Each change keeps whole rows, before and after, so the catalog at any logged moment can
//! be rebuilt by undoing the later entries.

use std::cell::{Cell, RefCell};

use serde_json::{json, Value};

use super::spi::on_catalog;
use crate::error::CrmResult;
use crate::session::identity;

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
    /// How many API calls are in progress (an API function may use another).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static CHANGES: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

/// An API call in progress. Dropped without `finish` (an error unwinding), it records nothing.
pub struct Call {
    audit: Option<Audit>,
    actor: Option<String>,
}

impl Call {
    /// Start a call, once the caller is authorised (so the acting user is resolved).
    pub fn start(audit: Audit) -> Call {
        if DEPTH.get() == 0 {
            CHANGES.with(|c| c.borrow_mut().clear());
        }
        DEPTH.set(DEPTH.get() + 1);
        Call { audit: Some(audit), actor: identity::known_name() }
    }

    /// The call succeeded: the outermost one writes its row if it changed the catalog (or,
    /// with `always`, in any case).
    pub fn finish(mut self, always: bool) -> CrmResult<()> {
        let audit = self.audit.take().expect("a call finishes once");
        DEPTH.set(DEPTH.get() - 1);
        if DEPTH.get() > 0 {
            return Ok(());
        }
        let changes = CHANGES.with(|c| std::mem::take(&mut *c.borrow_mut()));
        if changes.is_empty() && !always {
            return Ok(());
        }
        let details = json!({ "args": audit.args, "changes": changes });
        append(self.actor.take(), audit.operation, audit.target, details)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.audit.is_some() {
            DEPTH.set(DEPTH.get().saturating_sub(1));
            if DEPTH.get() == 0 {
                CHANGES.with(|c| c.borrow_mut().clear());
            }
        }
    }
}

/// Run `f` as an audited API call (the caller already authorised).
pub fn audited<R>(audit: Audit, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let call = Call::start(audit);
    let r = f()?;
    call.finish(false)?;
    Ok(r)
}

/// One statement wrote catalog table `table` (`op` its command; `old` and `new` the rows it
/// removed and added, as JSON arrays, NULL for none).
pub fn note(table: &str, op: &str, old: Option<Value>, new: Option<Value>) -> CrmResult<()> {
    // Statement triggers fire for statements that touched no row (an `ON CONFLICT DO NOTHING`
    // that found one): nothing changed, nothing to log.
    let rows = |v: &Option<Value>| v.as_ref().and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if SUPPRESSED.get() || (!rows(&old) && !rows(&new)) {
        return Ok(());
    }
    let change = json!({ "table": table, "op": op, "old": old.unwrap_or(json!([])), "new": new.unwrap_or(json!([])) });
    if DEPTH.get() > 0 {
        CHANGES.with(|c| c.borrow_mut().push(change));
        return Ok(());
    }
    append(identity::known_name(), op, Some(format!("crm.{table}")), json!({ "changes": [change] }))
}

fn append(actor: Option<String>, operation: &str, target: Option<String>, details: Value) -> CrmResult<()> {
    // pg_restore loads the log (its name sorts first) before the catalog tables, whose loading
    // is logged too, and sets the sequence only after all data: so an id is never below what
    // the log already holds.
    on_catalog(|c| {
        c.update(
            "INSERT INTO crm.audit_log (id, actor, operation, target, details)
             SELECT greatest(nextval('crm.audit_log_id_seq'), coalesce(max(id), 0) + 1), $1, $2, $3, $4 FROM crm.audit_log",
            None,
            &[actor.into(), operation.into(), target.into(), pgrx::JsonB(details).into()],
        )?;
        Ok(())
    })
}

thread_local! {
    static PRUNING: Cell<bool> = const { Cell::new(false) };
    /// Rebuilding a past catalog (`history`): its undo is rolled back, and is no change.
    static SUPPRESSED: Cell<bool> = const { Cell::new(false) };
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

/// Delete the entries older than `before` (the caller is a superuser); how many went.
pub fn prune(before: pgrx::datum::TimestampWithTimeZone) -> CrmResult<i64> {
    struct Pruning;
    impl Drop for Pruning {
        fn drop(&mut self) {
            PRUNING.set(false);
        }
    }
    let call = Call::start(crate::audit!("prune_audit_log", before));
    let deleted = {
        PRUNING.set(true);
        let _pruning = Pruning;
        on_catalog(|c| {
            let gone = c.update("WITH d AS (DELETE FROM crm.audit_log WHERE at < $1 RETURNING 1) SELECT count(*) FROM d", None, &[before.into()])?;
            Ok(gone.first().get_one::<i64>()?.unwrap_or(0))
        })?
    };
    CHANGES.with(|c| c.borrow_mut().push(json!({ "table": "audit_log", "op": "DELETE", "deleted": deleted })));
    call.finish(true)?;
    Ok(deleted)
}

//! Two narrow exemptions that crm_access grants itself, for one statement of its own, on
//! named tables only. Both are thread-local (backends are single-threaded) and cleared by a
//! drop guard, also when an error unwinds.
//!
//! - **Opened row security** (`with_rows_opened`): a child keeps a copy of its parent's
//!   owner in every row (`crm_parent_owner`), which must change on every child row when the
//!   parent's owner changes, including rows the invoker cannot see. The push runs as the
//!   invoker (never as a more privileged role, DESIGN §5), with the crm_access policies of
//!   the child table letting every row through for that one fixed UPDATE. Whatever else runs
//!   meanwhile is the child table's own triggers and rules, written by its owner, who can
//!   read every row of the table anyway (index expressions, `ALTER COLUMN ... USING`) — and,
//!   inside this window, write it unchecked: an open finding (docs/security.md, "What
//!   remains", red team round 8). Plans
//!   made while the rows are open are thrown away when they close (`session::plans`), so no
//!   cached plan carries the exemption beyond the statement.
//! - **Our own DDL** (`with_protection_changing`): `crm.protect`, `crm.unprotect` and
//!   `crm.link_parent` drop and create policies and triggers one statement at a time; the
//!   event trigger that refuses changes weakening a protected table (sql/guard.sql) lets
//!   those through for that table only, and the caller checks the finished result itself.

use std::cell::RefCell;

use pgrx::prelude::*;

thread_local! {
    static OPENED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static CHANGING: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

type Slot = &'static std::thread::LocalKey<RefCell<Vec<pg_sys::Oid>>>;

struct Guard {
    slot: Slot,
    count: usize,
    reset_plans: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.slot.with(|s| {
            let mut s = s.borrow_mut();
            let keep = s.len().saturating_sub(self.count);
            s.truncate(keep);
        });
        if self.reset_plans {
            crate::session::plans::invalidate();
        }
    }
}

fn with<R>(slot: Slot, tables: &[pg_sys::Oid], reset_plans: bool, f: impl FnOnce() -> R) -> R {
    if reset_plans {
        // Opening rows is itself a decision; plans made before must not be reused with the
        // exemption either.
        crate::session::plans::decision_made();
        crate::session::plans::invalidate();
    }
    slot.with(|s| s.borrow_mut().extend_from_slice(tables));
    let _guard = Guard { slot, count: tables.len(), reset_plans };
    f()
}

/// Run `f` (one fixed statement of ours) with the crm_access policies of `tables` letting
/// every row through.
pub fn with_rows_opened<R>(tables: &[pg_sys::Oid], f: impl FnOnce() -> R) -> R {
    with(&OPENED, tables, true, f)
}

/// Whether the crm_access policies of `tbl` are open for our own statement now.
pub fn rows_opened(tbl: pg_sys::Oid) -> bool {
    OPENED.with(|s| s.borrow().contains(&tbl))
}

/// Run `f` (our own DDL on `tbl`) with the event trigger's guard off for `tbl`.
pub fn with_protection_changing<R>(tbl: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    with(&CHANGING, &[tbl], false, f)
}

/// For the event trigger (sql/guard.sql): whether crm_access itself is changing the
/// protection of `tbl` right now. Anyone may ask; the answer is true only inside our own
/// `protect`, `unprotect` or `link_parent` call, and only for the table it works on.
#[pg_extern(volatile, parallel_restricted)]
fn protection_changing(tbl: pg_sys::Oid) -> bool {
    CHANGING.with(|s| s.borrow().contains(&tbl))
}

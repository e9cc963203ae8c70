//! Two narrow exemptions that crm_access grants itself, for one statement of its own, on
//! named tables only. Both are thread-local (backends are single-threaded) and cleared by a
//! drop guard, also when an error unwinds.
//!
//! - **Opened row security** (`with_rows_opened`): a child keeps a copy of its parent's
//!   owner in every row (`crm_parent_owner`), which must change on every child row when the
//!   parent's owner changes, including rows the acting user cannot see; a departing user's
//!   records move to another owner in every table. These writes run as the owner of the
//!   table written, in a security-restricted operation (`privileged::as_owner_of`), with the
//!   crm_access policies and field checks of the table letting every row through for that
//!   one fixed statement of ours and nothing else: the exemption holds only while that
//!   statement is planned and run (its planning, or its executor and the row triggers it
//!   fires, at the depth the exemption was opened at; `session::statement`). A statement
//!   the table owner's trigger, rule action or index-expression function runs inside it is
//!   deeper, and is checked like any other (red team round 8, closed in issue 24); rules
//!   on protected tables are refused (sql/guard.sql), since their actions would run at our
//!   statement's own depth. Plans made while the rows are open are thrown away when they
//!   close (`session::plans`), so no cached plan carries the exemption beyond the statement.
//! - **Our own DDL** (`with_protection_changing`): `crm.protect`, `crm.unprotect` and
//!   `crm.link_parent` drop and create policies and triggers one statement at a time; the
//!   event trigger that refuses changes weakening a protected table (sql/guard.sql) lets
//!   those through for that table only, and the caller checks the finished result itself.

use std::cell::{Cell, RefCell};

use pgrx::prelude::*;

thread_local! {
    /// crm_access's own DDL runs as one of its roles (`crm.secure_view`'s view).
    static OWN_DDL: Cell<bool> = const { Cell::new(false) };
    /// Tables opened, with the statement depth and planning depth they were opened at.
    static OPENED: RefCell<Vec<(pg_sys::Oid, usize, usize)>> = const { RefCell::new(Vec::new()) };
    static CHANGING: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

type Slot = &'static std::thread::LocalKey<RefCell<Vec<pg_sys::Oid>>>;

struct Guard {
    slot: Slot,
    count: usize,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.slot.with(|s| {
            let mut s = s.borrow_mut();
            let keep = s.len().saturating_sub(self.count);
            s.truncate(keep);
        });
    }
}

fn with<R>(slot: Slot, tables: &[pg_sys::Oid], f: impl FnOnce() -> R) -> R {
    slot.with(|s| s.borrow_mut().extend_from_slice(tables));
    let _guard = Guard { slot, count: tables.len() };
    f()
}

/// Closes what `with_rows_opened` opened, also when an error unwinds.
struct Opened {
    count: usize,
}

impl Drop for Opened {
    fn drop(&mut self) {
        OPENED.with(|s| {
            let mut s = s.borrow_mut();
            let keep = s.len().saturating_sub(self.count);
            s.truncate(keep);
        });
        crate::session::plans::invalidate();
    }
}

/// Run `f` (one fixed statement of ours) with the crm_access policies of `tables` letting
/// every row through, for that statement only (see the module comment).
pub fn with_rows_opened<R>(tables: &[pg_sys::Oid], f: impl FnOnce() -> R) -> R {
    // Opening rows is itself a decision; plans made before must not be reused with the
    // exemption either.
    crate::session::plans::decision_made();
    crate::session::plans::invalidate();
    let depth = (crate::session::statement::depth(), crate::session::plans::planning_depth());
    OPENED.with(|s| s.borrow_mut().extend(tables.iter().map(|&t| (t, depth.0, depth.1))));
    let _opened = Opened { count: tables.len() };
    f()
}

/// Whether the crm_access policies of `tbl` are open for our own statement now: while it is
/// planned (one planning deeper than where it was opened) or runs (one executor frame deeper,
/// no planning), and not in anything nested in it.
pub fn rows_opened(tbl: pg_sys::Oid) -> bool {
    let (frames, plannings) = (crate::session::statement::depth(), crate::session::plans::planning_depth());
    OPENED.with(|s| {
        s.borrow()
            .iter()
            .any(|&(t, f, p)| t == tbl && ((frames == f && plannings == p + 1) || (frames == f + 1 && plannings == p)))
    })
}

/// Run `f` (our own DDL on `tbl`) with the event trigger's guard off for `tbl`.
pub fn with_protection_changing<R>(tbl: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    with(&CHANGING, &[tbl], f)
}

/// For the event trigger (sql/guard.sql): whether crm_access itself is changing the
/// protection of `tbl` right now. Anyone may ask; the answer is true only inside our own
/// `protect`, `unprotect` or `link_parent` call, and only for the table it works on.
#[pg_extern(volatile, parallel_restricted)]
fn protection_changing(tbl: pg_sys::Oid) -> bool {
    CHANGING.with(|s| s.borrow().contains(&tbl))
}

/// Run `f`, crm_access's own DDL as one of its roles: the event trigger lets that through.
pub fn with_own_ddl<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OWN_DDL.set(self.0);
        }
    }
    let _reset = Reset(OWN_DDL.replace(true));
    f()
}

/// For the event trigger (sql/guard.sql): whether the current role may run the DDL command
/// that just ran. crm_access's roles own the catalog and the secure views, and no code but
/// crm_access's own fixed statements ever runs as them; a command run as one of them outside
/// `with_own_ddl` is someone's code that got to run as the role (issue 24, finding 3: a child
/// table owner's trigger replacing a secure view's rule to unmask hidden fields), and is
/// refused.
#[pg_extern(volatile, parallel_restricted)]
fn current_role_may_run_ddl() -> bool {
    use crate::catalog::privileged::{extension_role, ExtensionRole};
    if OWN_DDL.get() {
        return true;
    }
    // SAFETY: reads the current user id.
    let current = unsafe { pg_sys::GetUserId() };
    // A role that cannot be checked (made a superuser, say) is not ours to run as either.
    [ExtensionRole::Catalog, ExtensionRole::Views].into_iter().all(|r| extension_role(r).map_or(true, |oid| oid != current))
}

//! Resolving the acting CRM user (DESIGN §5).
//!
//! Exactly one source decides: `crm.user_name` when it is set, which is honoured only if
//! the session's login role is a superuser or a member of a trusted role (anyone else gets
//! an error, never someone else's rows); otherwise the login role's mapping. The login
//! role is `session_user`: SET ROLE does not change who is acting. With
//! `crm.require_local_user` on (the default), a non-superuser's `crm.user_name` counts only
//! in the transaction that set it.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use crm_model::{OwnerId, Reason, UserRef};
use pgrx::pg_sys;

use super::cache::{self, Loaded};
use super::guc;
use crate::error::{CrmError, CrmResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    None,
    Unknown(String),
    User(OwnerId),
}

/// (model generation, session user, setting) -> identity: run-time checks may ask per row.
type Memo = (u64, pg_sys::Oid, Option<String>, Identity);

thread_local! {
    static MEMO: RefCell<Option<Memo>> = const { RefCell::new(None) };
}

pub fn forget() {
    MEMO.with(|m| m.replace(None));
}

/// The acting user's name as the last resolution found it, if that was for this session's
/// login, the current setting and the cached model; never loads anything (for the denial log).
pub fn known_name() -> Option<String> {
    // SAFETY: reads the session's login role id.
    let login = unsafe { pg_sys::GetSessionUserId() };
    let setting = guc::user_name();
    let generation = cache::generation();
    let identity = MEMO.with(|memo| {
        memo.borrow().as_ref().filter(|(g, l, s, _)| *g == generation && *l == login && *s == setting).map(|x| x.3.clone())
    })?;
    match identity {
        Identity::None => None,
        Identity::Unknown(name) => Some(name),
        Identity::User(id) => cache::peek().and_then(|m| m.model.user(id).map(|u| u.name.to_string())),
    }
}

thread_local! {
    /// A transaction-local `crm.user_name` was honoured since the last transaction end.
    static HONOURED_LOCAL: Cell<bool> = const { Cell::new(false) };
}

/// Plans made for a transaction-local acting user must not outlive its transaction. The
/// assign hook resets them when the setting reverts, but PostgreSQL skips that hook when the
/// reverted value is the very same string (a `SET LOCAL` that brought back the session's own
/// value): so the end of every such transaction, and the abort of a subtransaction, resets
/// them as well.
pub fn init() {
    // SAFETY: registers functions that live as long as the library, at library load.
    unsafe {
        pg_sys::RegisterXactCallback(Some(end_of_transaction), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(end_of_subtransaction), std::ptr::null_mut());
    }
}

fn reset_if_honoured(keep: bool) {
    if HONOURED_LOCAL.with(|h| if keep { h.get() } else { h.replace(false) }) {
        forget();
        crate::session::plans::acting_user_changed();
    }
}

/// # Safety
/// Only PostgreSQL calls it, as a transaction callback registered in `init`.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn end_of_transaction(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT) {
        // First: the transaction's own state is gone, so what follows (this reset, the
        // setting's revert) invalidates only marked plans (`plans`).
        super::plans::transaction_ended();
        super::statement::transaction_ended();
        crate::catalog::audit::transaction_ended();
        reset_if_honoured(false);
        // A grant that ended meanwhile: the next transaction must not reuse a plan with it
        // (`expiry`); and an error's recovery has disabled every timeout.
        super::cache::expire_if_due(pg_sys::GetCurrentTimestamp());
        if matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT) {
            super::expiry::rearm_after_error();
        }
    }
}

/// # Safety
/// Only PostgreSQL calls it, as a subtransaction callback registered in `init`.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn end_of_subtransaction(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        super::plans::values_may_revert();
        crate::catalog::audit::subtransaction_aborted(sub);
        reset_if_honoured(true);
    }
}

fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId returns a palloc'd C string, or raises for a missing role.
    unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)).to_string_lossy().into_owned() }
}

/// Trusted roles are bound by oid (see crm.trusted_roles), so membership is checked against
/// the very role that was trusted, whatever its name is now.
fn is_trusted(m: &Loaded, login: pg_sys::Oid) -> bool {
    // SAFETY: reads of role catalog rows.
    unsafe {
        pg_sys::superuser_arg(login)
            || m.model.catalog().trusted_roles.iter().any(|&r| pg_sys::is_member_of_role(login, pg_sys::Oid::from(r)))
    }
}

/// Only a superuser session or a member of a trusted role may set `crm.user_name`.
pub fn check_may_assert(m: &Loaded) -> CrmResult<()> {
    // SAFETY: reads the session's login role id.
    let login = unsafe { pg_sys::GetSessionUserId() };
    if is_trusted(m, login) {
        return Ok(());
    }
    let login = role_name(login);
    Err(CrmError::denied(format!("role \"{login}\" may not set crm.user_name"))
        .with_detail("Only members of a role registered with crm.trust_role() may assert the acting CRM user.")
        .with_hint(format!("Unset crm.user_name, or have an administrator run crm.trust_role() for a role that \"{login}\" is a member of."))
        .about(None, Some("assert identity"), Some("the login is not a member of a trusted role")))
}

/// With `crm.require_local_user` on, a non-superuser's assertion counts only for the
/// transaction that made it: behind a transaction pooler, a session-level value stays on the
/// server connection and would act for the next client. Checked on every call, not memoised:
/// the same value is local in one transaction and left over in the next.
fn check_local(login: pg_sys::Oid) -> CrmResult<()> {
    if !guc::require_local_user() {
        return Ok(());
    }
    // Run-time checks may get here per row: the stack walk first, the role lookup only for
    // a value that is not transaction-local.
    if guc::user_name_is_transaction_local() {
        // Plans made now are for this transaction only; see `end_of_transaction`.
        HONOURED_LOCAL.with(|h| h.set(true));
        return Ok(());
    }
    // SAFETY: reads the role's catalog row.
    if unsafe { pg_sys::superuser_arg(login) } {
        return Ok(());
    }
    Err(CrmError::denied("crm.user_name was set for the session, not for this transaction")
        .with_detail("crm.require_local_user is on: the acting user must be set inside each transaction, so that a pooled connection carries nothing to its next client.")
        .with_hint("Run SET LOCAL crm.user_name or SELECT crm.set_user(name) after BEGIN, and RESET crm.user_name for the session.")
        .about(None, Some("assert identity"), Some("crm.user_name was set for the session, not for this transaction")))
}

pub fn resolve(m: &Loaded) -> CrmResult<Identity> {
    // Every decision goes through here: plans being built, and this transaction, now hold one.
    super::plans::decision_made();
    // SAFETY: reads the session's login role id.
    let login = unsafe { pg_sys::GetSessionUserId() };
    let setting = guc::user_name();
    let generation = cache::generation();
    let memo = MEMO.with(|memo| {
        memo.borrow().as_ref().filter(|(g, l, s, _)| *g == generation && *l == login && *s == setting).map(|x| x.3.clone())
    });
    let identity = match memo {
        Some(found) => found,
        None => {
            let identity = match &setting {
                Some(name) => {
                    check_may_assert(m)?;
                    match m.model.user_by_name(name) {
                        Some(u) => Identity::User(u.owner_id),
                        None => Identity::Unknown(name.clone()),
                    }
                }
                None => match m.model.catalog().db_role_map.get(&login.to_u32()) {
                    Some(&id) => Identity::User(id),
                    None => Identity::None,
                },
            };
            MEMO.with(|memo| memo.replace(Some((generation, login, setting.clone(), identity.clone()))));
            identity
        }
    };
    if setting.is_some() {
        match guc::user_name_taint() {
            guc::Taint::None => {}
            guc::Taint::Nested => {
                return Err(CrmError::denied("crm.user_name was changed by code running inside a statement")
                    .with_detail("Only the client's own statements may set or reset the acting CRM user; a policy, trigger, rule or function reset it.")
                    .with_hint("Set the acting user again: SET LOCAL crm.user_name = '...', or SELECT crm.set_user('...').")
                    .about(None, Some("assert identity"), Some("crm.user_name was reset by code inside a statement")))
            }
            guc::Taint::BeforeLoad => {
                return Err(CrmError::denied("crm.user_name was set before crm_access was loaded in this session")
                    .with_detail("Until the library is loaded, PostgreSQL keeps crm.user_name as a placeholder that any code can set, so who set it cannot be told.")
                    .with_hint("Load crm_access when sessions start (session_preload_libraries = 'crm_access'), or set the acting user with SELECT crm.set_user('...'), which loads it.")
                    .about(None, Some("assert identity"), Some("crm.user_name was set before the library was loaded")))
            }
        }
        check_local(login)?;
    }
    Ok(identity)
}

/// The acting user if it may act at all; otherwise why not (no identity, unknown, disabled).
pub fn acting_user(m: &Loaded) -> CrmResult<Result<UserRef<'_>, Reason>> {
    Ok(match resolve(m)? {
        Identity::None => Err(Reason::NoActingUser),
        Identity::Unknown(user) => Err(Reason::UnknownUser { user }),
        Identity::User(id) => match m.model.user(id) {
            Some(u) if u.is_active => Ok(u),
            Some(u) => Err(Reason::Disabled { user: u.name.to_string() }),
            None => Err(Reason::UnknownUser { user: id.to_string() }),
        },
    })
}

/// The acting user's owner id, and the owners whose records count as theirs (the user and
/// their groups): what the inbox views compare with. `None` when nobody may act, and on a
/// broken catalog (with a warning), so the views show nothing.
pub fn acting_owners(planning: bool) -> CrmResult<Option<(OwnerId, Vec<OwnerId>)>> {
    let Some(m) = cache::for_action(crm_model::Action::Read, planning)? else { return Ok(None) };
    Ok(acting_user(&m)?.ok().map(|u| (u.owner_id, m.model.owned_by(u.owner_id))))
}

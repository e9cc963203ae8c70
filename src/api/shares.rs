//! Record shares (DESIGN §9, issue 26): `crm.share_record`, `crm.unshare_record`, and who may
//! see a share (`crm.share_visible`, the row policy of `crm.shares` under `crm.record_shares`).

use crm_model::{Action, Party};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::AnyElement;

use super::admin::{role_id, user_id};
use super::authorize::{audited, is_admin, refuse_in_restricted_operation};
use super::permission_sets::future;
use super::sharing::group_id;
use crate::audit;
use crate::catalog::spi::{as_caller, insert_returning_id, on_catalog, one};
use crate::catalog::{latest, privileged};
use crate::catalog::tables::{existing, primary_key};
use crate::enforce::restrictions::Kind;
use crate::error::{required, CrmError, CrmResult, OrRaise};
use crate::session::cache::{self, Loaded};
use crate::session::identity;

const KINDS: &str = "user, group, role, role_and_subordinates";

/// How many shares of one table's records a user who is not an administrator may have made.
const SHARES_PER_USER: i64 = 10_000;

/// The receiver a kind and name name, as the engine's party and the row's (kind, target id).
fn receiver(c: &SpiClient<'_>, m: &Loaded, kind: &str, name: &str) -> CrmResult<Party> {
    Ok(match kind {
        "user" => {
            let id = user_id(c, name)?;
            if m.model.user(id).is_some_and(|u| !u.is_active) {
                return Err(CrmError::invalid(format!("CRM user \"{name}\" is disabled")).with_hint("Share with an active user."));
            }
            Party::User(id)
        }
        "group" => Party::Group(group_id(c, name)?),
        "role" => Party::Role(role_id(c, name)?),
        "role_and_subordinates" => Party::RoleAndSubordinates(role_id(c, name)?),
        other => return Err(CrmError::invalid(format!("unknown kind \"{other}\"; expected one of: {KINDS}"))),
    })
}

fn party_row(p: Party) -> (&'static str, i64) {
    match p {
        Party::User(id) => ("user", id),
        Party::Group(id) => ("group", id),
        Party::Role(id) => ("role", id),
        Party::RoleAndSubordinates(id) => ("role_and_subordinates", id),
    }
}

/// Who shares: the acting user, or `None` for the extension owner or a superuser acting as
/// nobody; refused for anyone else who cannot act.
fn sharer(m: &Loaded) -> CrmResult<Option<i64>> {
    match identity::acting_user(m)? {
        Ok(u) => Ok(Some(u.owner_id)),
        Err(reason) if !is_admin()? => Err(CrmError::denied("permission denied to share records").with_detail(reason.to_string())),
        Err(_) => Ok(None),
    }
}

/// The refusal for someone who may not share a record (or unshare it).
fn not_theirs(what: &str) -> CrmError {
    CrmError::denied(format!("permission denied to {what}"))
        .with_detail("Only the record's owner, a member of the group that owns it, a user above its owner in the role hierarchy, or an administrator may share or unshare it.")
}

/// The record of `tbl` whose key is `id`, as the caller may read it: (key text, owner). A record
/// the caller cannot read answers like one that does not exist.
fn record(m: &Loaded, tbl: pg_sys::Oid, table: &str, id: &AnyElement) -> CrmResult<(String, i64)> {
    let owner = m.owner_column_of(tbl).ok_or_else(|| CrmError::undefined("protected table", table))?.to_string();
    as_caller(|c| {
        let key = match primary_key(c, tbl)? {
            Some((k, typ)) if Kind::of(typ).is_some() && crate::policy::protect::shareable_key(c, tbl, &k, typ)? => (k, typ),
            _ => {
                return Err(CrmError::not_supported(format!("records of {table} cannot be shared: it has no single-column primary key of a type shares compare by its text"))
                    .with_hint("Shares find a record by a key of type text, varchar, smallint, integer, bigint, boolean or uuid; add one and crm.protect() the table again."))
            }
        };
        let value = super::explain::key_datum(id, key.1, table)?;
        let sql = format!("SELECT {k}::text, {o} FROM {table} WHERE {k} = $1", k = quote_identifier(&key.0), o = quote_identifier(&owner));
        // SAFETY: `value` is a datum of the key's type, valid for the rest of this call.
        let rows = c.select(&sql, Some(1), &[unsafe { DatumWithOid::new(value, key.1) }])?;
        if rows.is_empty() {
            return Err(CrmError::not_found(format!("no record of {table} with that id is visible to you")));
        }
        let (Some(k), Some(o)) = rows.first().get_two::<String, i64>()? else {
            return Err(CrmError::not_found(format!("no record of {table} with that id is visible to you")));
        };
        // The record as it stands now, locked until this transaction ends: its owner or key
        // cannot change, nor it go, between this check and the share's commit, so the
        // trigger that removes a record's shares with its owner sees the share (red team of
        // issue 26: a share made under an old snapshot, or racing a change of owner or a
        // delete, outlived them and reached the next owner's record under the same key).
        let lock = format!("SELECT {o} FROM {table} WHERE {k} = $1 FOR SHARE", k = quote_identifier(&key.0), o = quote_identifier(&owner));
        let arg = [(key.1, value, false)];
        let (found, now) = privileged::as_owner_of_unfiltered(tbl, || latest::execute(&lock, &arg, false))?;
        if found == 0 || now != Some(o) {
            return Err(CrmError::serialization(format!("the record of {table} changed while it was being shared"))
                .with_hint("Run the call again."));
        }
        Ok((k, o))
    })
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.share_record(tbl regclass, id anyelement, kind text, name text, access text, until timestamptz DEFAULT NULL)
           RETURNS bigint VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn share_record(
    tbl: Option<pg_sys::Oid>,
    id: Option<AnyElement>,
    kind: Option<&str>,
    name: Option<&str>,
    access: Option<&str>,
    until: Option<TimestampWithTimeZone>,
) -> i64 {
    let tbl = required("tbl", tbl);
    let id = required("id", id);
    let kind = required("kind", kind);
    let name = required("name", name);
    let access = required("access", access);
    if !matches!(access, "read" | "read_write") {
        CrmError::invalid(format!("unknown access \"{access}\"; expected read or read_write")).with_hint("A share never grants delete.").raise()
    }
    let until = until.map(|u| future("until", u).or_raise());
    refuse_in_restricted_operation().or_raise();
    let table = existing(tbl).or_raise();
    let m = cache::current(true).or_raise();
    if m.module_of(tbl).is_none() {
        CrmError::undefined("protected table", &table).raise()
    }
    let by = sharer(&m).or_raise();
    let (record_id, owner) = record(&m, tbl, &table, &id).or_raise();
    if by.is_some_and(|u| !m.model.may_share(u, owner)) {
        not_theirs("share this record").raise()
    }
    let until_text = until.map(|u| u.to_string());
    let record = record_id.clone();
    audited(audit!("share_record", table, record, kind, name, access, until_text), || {
        on_catalog(|c| {
            let (kind, target) = party_row(receiver(c, &m, kind, name)?);
            // Held until this share commits: deleting the receiver waits for it, then removes
            // it with the receiver's other shares; a receiver deleted meanwhile is not found
            // (red team of issue 26, round 3: a share racing delete_user committed naming a
            // user who was gone).
            let row = if kind.starts_with("role") { "crm.roles WHERE id = $1" } else { "crm.owners WHERE id = $1" };
            if c.update(&format!("SELECT 1 FROM {row} FOR KEY SHARE"), None, &[target.into()])?.is_empty() {
                let noun = match kind { "user" => "CRM user", "group" => "group", _ => "role" };
                return Err(CrmError::undefined(noun, name));
            }
            // The same share again changes nothing: no entry, no invalidation (red team).
            let same = one::<i64>(
                c,
                "SELECT id FROM crm.shares WHERE tbl = $1 AND record_id = $2 AND kind = $3 AND target_id = $4
                   AND owner_id = $5 AND access = $6 AND until IS NOT DISTINCT FROM $7",
                &[tbl.into(), record_id.as_str().into(), kind.into(), target.into(), owner.into(), access.into(), until.into()],
            )?;
            if let Some(id) = same {
                return Ok(id);
            }
            // Every share widens the plans of everyone it reaches: a user's shares of one
            // table are bounded (red team of issue 26: 20,000 shares to the top role made
            // every statement on the table plan 20,000 keys).
            if let Some(by) = by.filter(|&u| !m.model.user(u).is_some_and(|u| u.is_admin)) {
                let made = one::<i64>(c, "SELECT count(*) FROM crm.shares WHERE tbl = $1 AND shared_by = $2", &[tbl.into(), by.into()])?.unwrap_or(0);
                if made >= SHARES_PER_USER {
                    return Err(CrmError::limit(format!("a user may hold at most {SHARES_PER_USER} shares of one table's records"))
                        .with_hint("Unshare records that no longer need it, or ask an administrator (who is not limited) to share them, or share through a sharing rule."));
                }
            }
            // Sharing again with the same receiver sets the access and the end anew.
            insert_returning_id(
                c,
                "INSERT INTO crm.shares (tbl, record_id, owner_id, kind, target_id, access, until, shared_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tbl, record_id, kind, target_id) DO UPDATE
                 SET owner_id = excluded.owner_id, access = excluded.access, until = excluded.until,
                     shared_by = excluded.shared_by, shared_at = excluded.shared_at
                 RETURNING id",
                &[tbl.into(), record_id.as_str().into(), owner.into(), kind.into(), target.into(), access.into(), until.into(), by.into()],
            )
        })
    })
    .or_raise()
}

#[pg_extern]
fn unshare_record(share_id: Option<i64>) {
    let share_id = required("share_id", share_id);
    refuse_in_restricted_operation().or_raise();
    let m = cache::current(true).or_raise();
    let by = sharer(&m).or_raise();
    let missing = || CrmError::undefined("record share", &share_id.to_string()).with_hint("See crm.record_shares.");
    let share = on_catalog(|c| {
        let rows = c.select("SELECT tbl::oid, owner_id, kind, target_id, shared_by FROM crm.shares WHERE id = $1", Some(1), &[share_id.into()])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let r = rows.first();
        Ok(Some((r.get::<pg_sys::Oid>(1)?, r.get::<i64>(2)?, r.get::<String>(3)?, r.get::<i64>(4)?, r.get::<i64>(5)?)))
    })
    .or_raise();
    let Some((Some(tbl), Some(owner), Some(kind), Some(target), shared_by)) = share else { missing().raise() };
    // A share the caller may not see is answered as one that does not exist.
    if let Some(u) = by {
        if !visible(&m, u, tbl, owner, &kind, target, shared_by) {
            missing().raise()
        }
        if !m.model.may_share(u, owner) {
            not_theirs("unshare this record").raise()
        }
    }
    audited(audit!("unshare_record", share_id), || {
        on_catalog(|c| {
            c.update("DELETE FROM crm.shares WHERE id = $1", None, &[share_id.into()])?;
            Ok(())
        })
    })
    .or_raise()
}

/// Whether user `u` may see a share: one they made, one that reaches them, or one of a record
/// whose owner's records of the table's module they may read.
fn visible(m: &Loaded, u: i64, tbl: pg_sys::Oid, owner: i64, kind: &str, target: i64, shared_by: Option<i64>) -> bool {
    let party = match kind {
        "user" => Party::User(target),
        "group" => Party::Group(target),
        "role" => Party::Role(target),
        _ => Party::RoleAndSubordinates(target),
    };
    let Some(module) = m.module_of(tbl) else { return false };
    m.model.user(u).is_some_and(|x| x.is_active && x.is_admin)
        || shared_by == Some(u)
        || m.model.receives_share(u, party)
        || m.model.decide(Some(u), module, Action::Read, owner).allowed
}

/// The row policy of `crm.shares` for everyone but its owner: administrators (and the
/// extension owner, superusers) see every share; a user the shares `visible` lets them see;
/// anyone who cannot act, none.
#[pg_extern(stable, parallel_safe)]
fn share_visible(tbl: Option<pg_sys::Oid>, owner_id: Option<i64>, kind: Option<&str>, target_id: Option<i64>, shared_by: Option<i64>) -> bool {
    let (Some(tbl), Some(owner), Some(kind), Some(target)) = (tbl, owner_id, kind, target_id) else { return false };
    let Ok(m) = cache::current(false) else { return false };
    match identity::acting_user(&m) {
        Ok(Ok(u)) => visible(&m, u.owner_id, tbl, owner, kind, target, shared_by),
        _ => is_admin().unwrap_or(false),
    }
}

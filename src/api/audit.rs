//! The audit log's SQL surface (DESIGN §8): the note its catalog triggers hand over, the
//! guard that keeps it append-only, pruning, and who may read it.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

use super::authorize::is_admin;
use crate::catalog::audit;
use crate::error::{required, CrmError, OrRaise};
use crate::session::identity;

/// Called by `crm.audit_statement()`, the statement trigger on every catalog table, with the
/// rows the statement removed and added. Only the catalog role (which makes every API
/// change) may call it, and superusers, whose direct writes it records.
#[pg_extern]
fn audit_note(tbl: Option<&str>, op: Option<&str>, old: Option<JsonB>, new: Option<JsonB>) {
    let tbl = required("tbl", tbl);
    let op = required("op", op);
    // Before anything that might skip the note: the commit patches the users, and the groups'
    // memberships, whose rows these are (`commits::changed_keys`), and only if every
    // statement's rows came here.
    if let Some((keyed, column)) = crate::catalog::commits::Keyed::of_table(tbl) {
        let keys = |v: &Option<JsonB>| -> Option<Vec<i64>> {
            match v.as_ref().map(|j| &j.0) {
                None | Some(serde_json::Value::Null) => Some(Vec::new()),
                Some(serde_json::Value::Array(rows)) => rows.iter().map(|r| r.get(column).and_then(serde_json::Value::as_i64)).collect(),
                Some(_) => None,
            }
        };
        crate::catalog::commits::keyed_noted(keyed, keys(&old).zip(keys(&new)).map(|(mut a, b)| {
            a.extend(b);
            a
        }));
    }
    let restored = crate::session::statement::copying_into("crm", tbl);
    audit::note(tbl, op, old.map(|j| j.0), new.map(|j| j.0), identity::known_name(), restored).or_raise();
}

/// Whether a change to the catalog is noted now: not while a past catalog is rebuilt, nor
/// when a logical replication worker applies it (the publisher logged it, and its log is
/// replicated with the catalog: `crm.replicated_tables()`; the subscriber's own entry would
/// take an id the publisher's log fills later). `crm.audit_statement()` asks first, before it
/// gathers the statement's rows.
#[pg_extern(volatile, parallel_restricted)]
fn audit_wanted() -> bool {
    !audit::is_suppressed() && !audit::applied_by_subscription()
}

/// Keeps `crm.audit_log` (and its checkpoints, `crm.audit_checkpoints`) append-only: every
/// UPDATE, DELETE and TRUNCATE is refused, whoever runs it (the table owner and superusers
/// included), except the deletes of `crm.prune_audit_log`.
#[pg_trigger]
fn audit_log_append_only<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if audit::pruning() && trigger.event().fired_by_delete() {
        return Ok(trigger.old());
    }
    // This transaction dating its own entries as it commits (`catalog::commits`).
    if crate::catalog::commits::stamping() && trigger.event().fired_by_update() {
        return Ok(trigger.new());
    }
    let table = format!("crm.{}", trigger.table_name().unwrap_or_else(|_| "audit_log".to_string()));
    CrmError::denied(format!("{table} is append-only"))
        .with_detail("Its entries are never changed or removed, except old ones by crm.prune_audit_log().")
        .with_hint("A superuser may remove entries older than a date with crm.prune_audit_log(before).")
        .about(Some(&table), Some("change"), Some("the audit log is append-only"))
        .raise()
}

/// Remove the entries older than `before`; superusers only. The pruning is itself logged.
#[pg_extern]
fn prune_audit_log(before: Option<TimestampWithTimeZone>) -> i64 {
    let before = required("before", before);
    // SAFETY: reads the current user's role attributes.
    if !unsafe { pg_sys::superuser() } {
        CrmError::denied("permission denied to prune the audit log")
            .with_hint("Only superusers may remove audit entries.")
            .about(Some("crm.audit_log"), Some("prune"), Some("only superusers may prune the audit log"))
            .raise();
    }
    audit::prune(before, identity::known_name()).or_raise()
}

/// Whether the caller may read `crm.audit_log` (its row policy): a CRM administrator acting,
/// the extension owner, a superuser.
#[pg_extern(stable, parallel_restricted)]
fn reads_audit_log() -> bool {
    is_admin().unwrap_or(false)
}

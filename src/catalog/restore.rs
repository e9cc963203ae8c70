//! Restores (issue 27; sql/operations.sql).
//!
//! pg_restore loads each of crm_access's tables with `COPY crm.t (every column) FROM stdin`.
//! With `-j N` its workers load them in any order, each in a transaction of its own (pg_dump
//! orders extension tables by their keys, but records no dependency a parallel restore
//! follows), into tables whose keys and checking triggers CREATE EXTENSION made before: a
//! table loaded before the one it references lost its rows (profile privileges, group
//! members, conversations, messages, events), and every non-administrator then saw nothing.
//!
//! Such a load (the client's own `COPY crm.t FROM`, of whole rows, by a superuser) runs as a
//! replica applies rows: `session_replication_role = replica` for the statement, so the keys
//! and the ordinary triggers (the checks of conversations and messages, which also compute
//! the kept columns a dump already holds) wait, and crm_access's ALWAYS triggers still fire
//! (invalidation, the audit log's, which logs no load, and the binding of database roles by
//! name). A superuser could set that mode anyway; the rows are a dump's, taken in one
//! snapshot. What the keys would have checked is checked when the model is next compiled
//! (`problems`), for as long as a loaded table the model is compiled from is noted in
//! `crm.unverified_loads`: a catalog with a missing reference is refused, so a restore that
//! is still running, or lost a table, fails closed and says why. The first catalog commit
//! that finds the references whole forgets the notes (`forget_if_whole`).

use pgrx::pg_sys;

use super::privileged::{self, query_one};
use crate::error::{CrmError, CrmResult};

/// The table a client's `COPY ... FROM` loads, when it is such a load: into a table of
/// crm_access, every column (or none named), by a superuser.
///
/// # Safety
/// `copy` must be a valid `CopyStmt` of the statement being run.
pub unsafe fn whole_row_load(copy: *const pg_sys::CopyStmt) -> Option<pg_sys::Oid> {
    let rel = (*copy).relation;
    if !(*copy).is_from || rel.is_null() || !pg_sys::superuser() {
        return None;
    }
    let extension = pg_sys::get_extension_oid(c"crm_access".as_ptr(), true);
    if extension == pg_sys::InvalidOid {
        return None;
    }
    // The lock COPY FROM takes itself, so it is not upgraded later.
    let relid = pg_sys::RangeVarGetRelidExtended(
        rel,
        pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    );
    if relid == pg_sys::InvalidOid || pg_sys::getExtensionOfObject(pg_sys::RelationRelationId, relid) != extension {
        return None;
    }
    // A list of every column is what pg_dump writes; none named means every column too.
    let attlist = (*copy).attlist;
    let named = if attlist.is_null() { 0 } else { (*attlist).length as usize };
    if named == 0 {
        return Some(relid);
    }
    let columns = super::tables::columns(relid).iter().filter(|c| !matches!(c.filled, super::tables::Filled::Generated)).count();
    (named == columns).then_some(relid)
}

/// Run the load with the keys' and ordinary triggers' checks waiting (see the module
/// comment); everything set inside is undone after it.
pub fn as_replica<R>(f: impl FnOnce() -> R) -> R {
    struct Level(i32);
    impl Drop for Level {
        fn drop(&mut self) {
            // On an error the transaction's abort pops the nest level itself.
            if !std::thread::panicking() {
                // SAFETY: pops the nest level pushed below.
                unsafe { pg_sys::AtEOXact_GUC(false, self.0) };
            }
        }
    }
    // SAFETY: a new GUC nest level and a setting inside it; the superuser context because
    // only superusers may set it, and only a superuser's load gets here (`whole_row_load`).
    let _level = unsafe {
        let level = Level(pg_sys::NewGUCNestLevel());
        pg_sys::set_config_option(
            c"session_replication_role".as_ptr(),
            c"replica".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
        level
    };
    f()
}

/// Whether this database's crm_access has the notes (a library newer than the installed
/// SQL, before `ALTER EXTENSION crm_access UPDATE`, works without them).
fn present() -> bool {
    // SAFETY: syscache lookups by name.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        schema != pg_sys::InvalidOid && pg_sys::get_relname_relid(c"unverified_loads".as_ptr(), schema) != pg_sys::InvalidOid
    }
}

/// Note a loaded table the model is compiled from, in the load's transaction.
pub fn noted(relid: pg_sys::Oid) -> CrmResult<()> {
    if !present() {
        return Ok(());
    }
    super::spi::on_catalog(|c| {
        c.update(
            "INSERT INTO crm.unverified_loads (tbl)
             SELECT c.tbl FROM crm.catalog_tables c WHERE c.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass AND c.compiled
             ON CONFLICT (tbl) DO UPDATE SET loaded_at = pg_catalog.now()",
            None,
            &[relid.into()],
        )?;
        Ok(())
    })
}

/// What the compile must refuse: the references a row of the catalog breaks, while a load
/// is unverified (None when none is, or all are whole). Runs as the catalog's owner under
/// the caller's active snapshot.
pub fn problems() -> CrmResult<Option<String>> {
    if !present() {
        return Ok(None);
    }
    const QUERY: &std::ffi::CStr = c"
        SELECT CASE WHEN EXISTS (SELECT FROM crm.unverified_loads) THEN
            (SELECT pg_catalog.string_agg(pg_catalog.format('%s of %s (%s)', CASE p.rows WHEN 1 THEN '1 row' ELSE p.rows || ' rows' END, p.tbl, p.key), '; ')
             FROM crm.catalog_problems(true) p)
        END";
    privileged::as_catalog_role(|| Ok(query_one(QUERY)))
}

/// The refusal for `problems`' answer.
pub fn incomplete(problems: String) -> CrmError {
    CrmError::broken_catalog(format!(
        "{problems} name a row that does not exist. A restore loaded these tables (pg_restore -j loads them in any order); their references are checked before the model is used."
    ))
    .with_hint("Let the restore finish, or restore the whole dump again; until the references are whole, no protected row is visible and every write is refused. A superuser sees what is missing with SELECT * FROM crm.catalog_problems().")
}

/// At a catalog commit: once the references are whole, forget the notes (visible to this
/// commit's snapshot; a load still in progress keeps its own).
pub fn forget_if_whole() -> CrmResult<()> {
    if !present() {
        return Ok(());
    }
    super::spi::on_catalog(|c| {
        // One statement, one snapshot: a note is forgotten only with the rows it was about.
        if super::spi::exists(c, "SELECT 1 FROM crm.unverified_loads LIMIT 1", &[])? {
            c.update("DELETE FROM crm.unverified_loads WHERE NOT EXISTS (SELECT FROM crm.catalog_problems(true))", None, &[])?;
        }
        Ok(())
    })
}

//! Facts about users' tables that the API and the policies need: their quoted names, their
//! single-column primary key, and whether the caller may put crm_access on them at all.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, SpiClient};

use crate::error::{CrmError, CrmResult};

/// `schema.table`, each part quoted as needed; `None` if no such relation exists. Always
/// qualified, so that no search_path, and no temporary table, can change what it names.
pub fn qualified_name(tbl: pg_sys::Oid) -> Option<String> {
    // SAFETY: syscache lookups that return palloc'd copies or NULL.
    unsafe {
        let name = pg_sys::get_rel_name(tbl);
        if name.is_null() {
            return None;
        }
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(tbl));
        if schema.is_null() {
            return None;
        }
        let text = |p: *mut std::ffi::c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
        Some(format!("{}.{}", quote_identifier(text(schema)), quote_identifier(text(name))))
    }
}

/// Whether row security applies to `role` (the current user for InvalidOid) on `tbl`: it is
/// enabled there, and `role` is neither a superuser, nor BYPASSRLS, nor an owner of a table
/// that does not FORCE it. Who bypasses row security is not a CRM user.
pub fn row_security_applies(tbl: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: reads the relation's row security flags and the role's attributes.
    unsafe { pg_sys::check_enable_rls(tbl, role, true) == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 }
}

/// The row type of relation `tbl`; InvalidOid for anything that is not a relation.
pub fn row_type_of(tbl: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup.
    unsafe { pg_sys::get_rel_type_id(tbl) }
}

/// `qualified_name`, or an "undefined" error naming the oid.
pub fn existing(tbl: pg_sys::Oid) -> CrmResult<String> {
    qualified_name(tbl).ok_or_else(|| CrmError::not_found(format!("relation with OID {} does not exist", tbl.to_u32())))
}

/// The single-column primary key of `tbl` as (column, type), if it has one.
pub fn primary_key(c: &SpiClient<'_>, tbl: pg_sys::Oid) -> CrmResult<Option<(String, pg_sys::Oid)>> {
    let key = c.select(
        "SELECT a.attname::text, a.atttypid FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = $1 AND i.indisprimary AND i.indnkeyatts = 1",
        Some(1),
        &[tbl.into()],
    )?;
    if key.is_empty() {
        return Ok(None);
    }
    let (column, ty) = key.first().get_two::<String, pg_sys::Oid>()?;
    Ok(column.zip(ty))
}

/// The single-column primary key of `tbl` as (column, type), from the relation cache: for
/// triggers, which ask once per row. Locks `tbl` (as any statement on it would).
pub fn primary_key_of(tbl: pg_sys::Oid) -> Option<(String, pg_sys::Oid)> {
    // SAFETY: the relation is locked before its cache entry is read, the index is opened
    // and closed with a lock, and every pointer is read while its relation is open.
    unsafe {
        pg_sys::LockRelationOid(tbl, pg_sys::AccessShareLock as i32);
        let rel = pg_sys::RelationIdGetRelation(tbl);
        if rel.is_null() {
            return None;
        }
        // Fills rd_pkindex; the list returned is a copy.
        pg_sys::list_free(pg_sys::RelationGetIndexList(rel));
        let pk = (*rel).rd_pkindex;
        pg_sys::RelationClose(rel);
        if pk == pg_sys::InvalidOid {
            return None;
        }
        let index = pg_sys::index_open(pk, pg_sys::AccessShareLock as i32);
        let form = (*index).rd_index;
        let attnum = ((*form).indnkeyatts == 1).then(|| (*form).indkey.values.as_slice(1)[0]);
        pg_sys::index_close(index, pg_sys::AccessShareLock as i32);
        let attnum = attnum?;
        let name = pg_sys::get_attname(tbl, attnum, true);
        (!name.is_null()).then(|| (CStr::from_ptr(name).to_string_lossy().into_owned(), pg_sys::get_atttype(tbl, attnum)))
    }
}

/// Whether some index of `tbl` has `column` as its first key.
pub fn has_index_led_by(c: &SpiClient<'_>, tbl: pg_sys::Oid, column: &str) -> CrmResult<bool> {
    Ok(!c
        .select(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = $1 AND a.attname = $2",
            Some(1),
            &[tbl.into(), column.into()],
        )?
        .is_empty())
}

/// What makes a relation unfit to carry crm_access policies, if anything; and the caller
/// must own it (or be a superuser), so that no CRM administrator can attach, detach or
/// rewrite enforcement on a table someone else owns (DESIGN §5).
pub fn check_caller_owns_plain_table(c: &SpiClient<'_>, tbl: pg_sys::Oid, what: &str) -> CrmResult<String> {
    let table = existing(tbl)?;
    let row = c.select(
        "SELECT c.relkind::text, c.relpersistence::text, c.relispartition, n.nspname::text, c.relowner,
                EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'),
                EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        Some(1),
        &[tbl.into()],
    )?;
    let row = row.first();
    let kind: String = row.get(1)?.unwrap_or_default();
    let persistence: String = row.get(2)?.unwrap_or_default();
    let partition: bool = row.get(3)?.unwrap_or(false);
    let schema: String = row.get(4)?.unwrap_or_default();
    let owner: pg_sys::Oid = row.get(5)?.unwrap_or(pg_sys::InvalidOid);
    let extension_member: bool = row.get(6)?.unwrap_or(false);
    let inherits: bool = row.get(7)?.unwrap_or(false);
    let refuse = |why: String, hint: &str| Err(CrmError::not_supported(format!("cannot {what} {table}: {why}")).with_hint(hint.to_string()));
    if persistence == "t" {
        return refuse("it is a temporary table".into(), "Protect a permanent table.");
    }
    if tbl.to_u32() < pg_sys::FirstNormalObjectId || matches!(schema.as_str(), "pg_catalog" | "information_schema" | "pg_toast" | "crm")
        || schema.starts_with("pg_toast_temp") || extension_member
    {
        return refuse(
            "it belongs to PostgreSQL or to an extension".into(),
            "Only the CRM's own tables can be protected; crm_access's tables are protected by the extension itself.",
        );
    }
    if kind == "p" || partition || inherits {
        return refuse(
            "partitioned tables, partitions and tables in an inheritance tree are not supported".into(),
            "Row security of a partitioned or inheritance parent does not apply to its partitions or children read directly; protect a plain table.",
        );
    }
    if kind != "r" {
        return Err(CrmError::datatype_mismatch(format!("{table} is not a table")).with_hint("Only plain tables can be protected."));
    }
    // SAFETY: reads the caller's id and role catalog rows.
    let caller = unsafe { pg_sys::GetUserId() };
    if !unsafe { pg_sys::has_privs_of_role(caller, owner) } {
        return Err(CrmError::denied(format!("must be owner of table {table} to {what} it"))
            .with_detail("crm_access changes a table's row security, policies and triggers only for the table's owner (or a superuser), in addition to CRM administrator rights.")
            .with_hint(format!("Run it as the owner of {table}, or ask them to.")));
    }
    Ok(table)
}

/// One live column of a table, as the field checks need it.
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub typid: pg_sys::Oid,
    pub typmod: i32,
    pub collation: pg_sys::Oid,
    pub filled: Filled,
}

/// What an INSERT that leaves a column out puts in it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// NULL: any other value was written by the writer.
    Null,
    /// A default (or identity) expression.
    Default,
    /// A generated column, which PostgreSQL never takes a written value for.
    Generated,
}

impl Filled {
    pub fn of(a: &pg_sys::FormData_pg_attribute) -> Filled {
        if a.attgenerated != 0 {
            Filled::Generated
        } else if a.atthasdef || a.attidentity != 0 || has_domain_default(a.atttypid) {
            Filled::Default
        } else {
            Filled::Null
        }
    }
}

/// Whether `typid` is a domain with a default, which an INSERT leaving the column out puts
/// there as a column default would (red team round 7: such an INSERT was refused).
fn has_domain_default(typid: pg_sys::Oid) -> bool {
    // SAFETY: a type cache lookup; the default expression is built in the current memory
    // context and only tested for NULL.
    unsafe { !pg_sys::get_typdefault(typid).is_null() }
}

/// The live columns of `tbl` (none if it does not exist).
pub fn columns(tbl: pg_sys::Oid) -> Vec<Column> {
    // SAFETY: the relation is opened by oid (NULL if it does not exist) and closed after its
    // descriptor, which lives as long as it is open, has been read.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(tbl);
        if rel.is_null() {
            return Vec::new();
        }
        let out = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att)
            .iter()
            .filter(|a| !a.attisdropped)
            .map(|a| Column {
                attnum: a.attnum,
                name: CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned(),
                typid: a.atttypid,
                typmod: a.atttypmod,
                collation: a.attcollation,
                filled: Filled::of(a),
            })
            .collect();
        pg_sys::RelationClose(rel);
        out
    }
}

/// The default (or identity) expression of column `attnum` of `tbl`, and whether it is
/// volatile (a sequence, clock_timestamp(), random()): evaluating it again would not give
/// the value an INSERT that left the column out got.
pub fn default_of(tbl: pg_sys::Oid, attnum: i16) -> Option<(*mut pg_sys::Node, bool)> {
    // SAFETY: as in `columns`; the expression is a new node in the current memory context.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(tbl);
        if rel.is_null() {
            return None;
        }
        let expr = pg_sys::build_column_default(rel, attnum as i32);
        pg_sys::RelationClose(rel);
        (!expr.is_null()).then(|| (expr, pg_sys::contain_volatile_functions(expr)))
    }
}

//! Restriction rules (DESIGN §9): `crm.add_restriction_rule` and `crm.drop_restriction_rule`.
//! The engine applies them (`crm_model::Model::restriction_filter`), through the `crm_restrict`
//! policy of every protected table (`enforce::restrictions`).

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::admin::{check_module, role_id};
use super::authorize::administer;
use super::permission_sets::set_id;
use super::sharing::group_id;
use crate::audit;
use crate::catalog::latest;
use crate::catalog::spi::{insert_returning_id, one, Client};
use crate::error::{required, CrmError, CrmResult};

const KINDS: &str = "role, role_and_subordinates, group, permission_set";

/// At most this many values per rule, of at most `VALUE_BYTES` each and `RULE_BYTES` in all:
/// each is compared in every statement of every user the rule applies to, planned into every
/// such statement, and kept in every catalog checkpoint (red team of issue 25: a thousand
/// values of 10 kB made a restricted user's first statement in each backend take 0.5 s).
const VALUE_LIMIT: usize = 1000;
const VALUE_BYTES: usize = 1000;
const RULE_BYTES: usize = 64 * 1024;

/// The id of what a rule applies to, held FOR SHARE until the rule commits: a removal of it
/// holds it FOR UPDATE before looking for rules that name it (`sharing::check_unreferenced`).
fn applies_to(c: &mut SpiClient<'_>, kind: &str, name: &str) -> CrmResult<i64> {
    let (id, lock) = match kind {
        "role" | "role_and_subordinates" => (role_id(c, name)?, "SELECT 1 FROM crm.roles WHERE id = $1 FOR SHARE"),
        "group" => (group_id(c, name)?, "SELECT 1 FROM crm.owners WHERE id = $1 FOR SHARE"),
        "permission_set" => (set_id(c, name)?, "SELECT 1 FROM crm.permission_sets WHERE id = $1 FOR SHARE"),
        other => return Err(CrmError::invalid(format!("unknown kind \"{other}\"; expected one of: {KINDS}"))),
    };
    if c.update(lock, None, &[id.into()])?.is_empty() {
        return Err(CrmError::undefined(kind, name).with_detail("It was removed while the rule was being added."));
    }
    Ok(id)
}

/// Refuse a column some protected table of `module` cannot give a rule (missing, or of a type
/// rules cannot compare; sql/guard.sql's `crm.restriction_column_problem`).
fn check_column(c: &SpiClient<'_>, module: &str, column: &str) -> CrmResult<()> {
    let problems = c.select(
        "SELECT tbl::text, crm.restriction_column_problem(tbl, $2), NOT EXISTS (SELECT 1 FROM pg_attribute a
                     WHERE a.attrelid = tbl AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped)
         FROM crm.protected_tables WHERE module = $1 AND crm.restriction_column_problem(tbl, $2) IS NOT NULL ORDER BY 1",
        None,
        &[module.into(), column.into()],
    )?;
    let mut first_missing = None;
    let mut all = Vec::new();
    for row in problems {
        let (table, problem, missing) = (row.get::<String>(1)?, row.get::<String>(2)?, row.get::<bool>(3)?);
        if missing == Some(true) && first_missing.is_none() {
            first_missing = table;
        }
        all.extend(problem);
    }
    if all.is_empty() {
        return Ok(());
    }
    let hint = "The column must exist on every protected table of the module, as text or varchar (deterministic collation), smallint, integer, bigint, boolean or uuid.";
    Err(match first_missing {
        Some(table) => CrmError::undefined_column(&table, column).with_detail(all.join("; ")).with_hint(hint),
        None => CrmError::datatype_mismatch(format!("restriction rules cannot compare column {column}: {}", all.join("; "))).with_hint(hint),
    })
}

/// The protected tables of `module`.
fn module_tables(c: &SpiClient<'_>, module: &str) -> CrmResult<Vec<pg_sys::Oid>> {
    let rows = c.select("SELECT tbl::oid FROM crm.protected_tables WHERE module = $1", None, &[module.into()])?;
    let mut out = Vec::new();
    for row in rows {
        out.extend(row.get::<pg_sys::Oid>(1)?);
    }
    Ok(out)
}

/// Add a restriction rule: for the users it applies to, records of `module` are reachable only
/// when `column_name`'s value, as text, is one of `allowed`. Returns the rule's id.
#[pg_extern]
fn add_restriction_rule(module: Option<&str>, kind: Option<&str>, name: Option<&str>, column_name: Option<&str>, allowed: Option<Vec<Option<String>>>) -> i64 {
    let module = required("module", module);
    let kind = required("kind", kind);
    let name = required("name", name);
    let column = required("column_name", column_name);
    let allowed = required("allowed", allowed);
    administer(audit!("add_restriction_rule", module, kind, name, column, allowed), |c: Client| {
        check_module(c, module)?;
        // Held against a concurrent drop_module (which holds it FOR UPDATE before looking).
        c.update("SELECT 1 FROM crm.modules WHERE name = $1 FOR SHARE", None, &[module.into()])?;
        if one::<String>(c, "SELECT holds FROM crm.modules WHERE name = $1", &[module.into()])?.is_some() {
            return Err(CrmError::invalid(format!("restriction rules do not apply to {module}: its records are crm_access's own"))
                .with_hint("Restriction rules apply to modules of protected tables."));
        }
        let target = applies_to(c, kind, name)?;
        if column.is_empty() {
            return Err(CrmError::invalid("the column name must not be empty"));
        }
        // Serialised with a concurrent crm.protect of the module (which holds the module's row
        // FOR UPDATE) and with the owners' DDL on its tables (the lock waits for an ALTER
        // TABLE), then checked again under the latest snapshot: what either committed
        // meanwhile is seen in REPEATABLE READ too (red team of issue 25: both committed, and
        // the table left without the column refused every later DDL of the database).
        for tbl in module_tables(c, module)? {
            // SAFETY: takes a lock on a relation by oid, held to the end of the transaction.
            unsafe { pg_sys::LockRelationOid(tbl, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
        }
        check_column(c, module, column)?;
        let (_, late) = latest::execute(
            "SELECT count(*) FROM crm.protected_tables WHERE module = $1 AND crm.restriction_column_problem(tbl, $2) IS NOT NULL",
            &[(pg_sys::TEXTOID, module.into_datum().expect("text"), false), (pg_sys::TEXTOID, column.into_datum().expect("text"), false)],
            true,
        )?;
        if late.unwrap_or(0) > 0 {
            return Err(CrmError::serialization(format!("a table of {module} was protected or changed while the rule was being added"))
                .with_hint("Run the call again."));
        }
        if allowed.is_empty() {
            return Err(CrmError::invalid("a restriction rule must allow at least one value")
                .with_hint("To keep a module from a user altogether, revoke its privileges instead."));
        }
        let mut values: Vec<String> = Vec::with_capacity(allowed.len());
        for v in allowed {
            let v = v.ok_or_else(|| CrmError::invalid("the list of allowed values contains NULL").with_hint("NULL is never allowed: a record whose column is NULL is outside every rule."))?;
            if !values.contains(&v) {
                values.push(v);
            }
        }
        if values.len() > VALUE_LIMIT {
            return Err(CrmError::invalid(format!("a restriction rule allows at most {VALUE_LIMIT} values")));
        }
        if values.iter().any(|v| v.len() > VALUE_BYTES) || values.iter().map(String::len).sum::<usize>() > RULE_BYTES {
            return Err(CrmError::invalid(format!("a restriction rule's values are at most {VALUE_BYTES} bytes each and {RULE_BYTES} bytes in all")));
        }
        insert_returning_id(
            c,
            "INSERT INTO crm.restrictions (module, kind, target_id, column_name, allowed) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[module.into(), kind.into(), target.into(), column.into(), values.into()],
        )
    })
}

#[pg_extern]
fn drop_restriction_rule(id: Option<i64>) {
    let id = required("id", id);
    administer(audit!("drop_restriction_rule", id), |c: Client| {
        if c.update("DELETE FROM crm.restrictions WHERE id = $1", None, &[id.into()])?.is_empty() {
            return Err(CrmError::undefined("restriction rule", &id.to_string()).with_hint("See crm.restriction_rules."));
        }
        Ok(())
    })
}

//! Field access administration (DESIGN §3.2, §4) and `crm.secure_view`.

use crm_model::FieldAccess;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};

use super::admin::{check_module, exists, one, profile_id, Client};
use super::authorize::{administer, as_caller, on_catalog, require_admin};
use crate::catalog::tables::{check_caller_owns_plain_table, existing, primary_key};
use crate::error::{CrmError, CrmResult, OrRaise};

/// A field is a column of one of the module's protected tables.
fn check_field(c: Client, module: &str, field: &str) -> CrmResult<()> {
    check_module(c, module)?;
    let found = exists(
        c,
        "SELECT 1 FROM crm.protected_tables p JOIN pg_attribute a ON a.attrelid = p.tbl
         WHERE p.module = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        &[module.into(), field.into()],
    )?;
    if !found {
        let tables: Option<String> =
            one(c, "SELECT string_agg(tbl::text, ', ' ORDER BY tbl::text) FROM crm.protected_tables WHERE module = $1", &[module.into()])?;
        let hint = match tables {
            Some(t) => format!("Fields of {module} are the columns of its protected tables: {t}."),
            None => format!("{module} has no protected table yet: protect one with crm.protect() first."),
        };
        return Err(CrmError::undefined_field(module, field).with_hint(hint));
    }
    Ok(())
}

#[pg_extern]
fn set_field_access(profile: &str, module: &str, field: &str, access: &str) {
    administer(|c: Client| {
        let id = profile_id(c, profile)?;
        check_field(c, module, field)?;
        let access = access.parse::<FieldAccess>().map_err(|e| CrmError::invalid(e.to_string()))?;
        // read_write is what an unmentioned field is: store only restrictions.
        c.update("DELETE FROM crm.field_access WHERE profile_id = $1 AND module = $2 AND field = $3", None, &[id.into(), module.into(), field.into()])?;
        if access != FieldAccess::ReadWrite {
            c.update("INSERT INTO crm.field_access VALUES ($1, $2, $3, $4)", None, &[id.into(), module.into(), field.into(), access.as_str().into()])?;
        }
        Ok(())
    })
}

#[pg_extern]
fn set_global_field_access(module: &str, field: &str, visible: bool) {
    administer(|c: Client| {
        check_field(c, module, field)?;
        if visible {
            c.update("DELETE FROM crm.hidden_fields WHERE module = $1 AND field = $2", None, &[module.into(), field.into()])?;
        } else {
            c.update("INSERT INTO crm.hidden_fields VALUES ($1, $2) ON CONFLICT DO NOTHING", None, &[module.into(), field.into()])?;
        }
        Ok(())
    })
}

/// Creates or refreshes `<table>_secure` (see `policy::fields`); returns the view.
#[pg_extern(
    sql = "CREATE FUNCTION crm.secure_view(tbl regclass) RETURNS regclass VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn secure_view(tbl: Option<pg_sys::Oid>) -> pg_sys::Oid {
    require_admin().or_raise();
    let tbl = tbl.ok_or_else(|| CrmError::null_argument("tbl")).or_raise();
    make_secure_view(tbl).or_raise()
}

fn make_secure_view(tbl: pg_sys::Oid) -> CrmResult<pg_sys::Oid> {
    let table = existing(tbl)?;
    let registered = on_catalog(|c| {
        if !exists(c, "SELECT 1 FROM crm.protected_tables WHERE tbl = $1", &[tbl.into()])? {
            return Err(CrmError::undefined("protected table", &table).with_hint("Protect it first with crm.protect()."));
        }
        one::<pg_sys::Oid>(c, "SELECT view::oid FROM crm.secure_views WHERE tbl = $1", &[tbl.into()])
    })?;
    let view = as_caller(|c| {
        check_caller_owns_plain_table(c, tbl, "make a secure view of")?;
        let (schema, name) = one::<String>(c, "SELECT quote_ident(nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1", &[tbl.into()])?
            .zip(one::<String>(c, "SELECT relname::text FROM pg_class WHERE oid = $1", &[tbl.into()])?)
            .unwrap_or_default();
        let view = format!("{schema}.{}", quote_identifier(format!("{name}_secure")));
        // Refresh only a view this function made: an object of that name made by someone
        // else keeps its owner through CREATE OR REPLACE, and could be redefined by them.
        let found = one::<pg_sys::Oid>(c, "SELECT to_regclass($1)::oid", &[view.as_str().into()])?;
        if let Some(found) = found {
            if Some(found) != registered {
                return Err(CrmError::duplicate("relation", &view)
                    .with_detail("crm.secure_view() refreshes only the view it created for this table.")
                    .with_hint(format!("Drop or rename {view}, then call crm.secure_view() again.")));
            }
        }
        let columns: Vec<String> = c
            .select(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                None,
                &[tbl.into()],
            )?
            .map(|r| r.get::<String>(1).map(|n| n.unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        let lit = quote_literal(&table);
        let list: Vec<String> = columns
            .iter()
            .map(|col| {
                let q = quote_identifier(col);
                format!("CASE WHEN crm.field_visible({lit}::regclass, {}) THEN {q} END AS {q}", quote_literal(col))
            })
            .collect();
        let replaced = c.update(
            &format!("CREATE OR REPLACE VIEW {view} WITH (security_invoker = true) AS SELECT {} FROM {table}", list.join(", ")),
            None,
            &[],
        );
        if let Err(e) = replaced {
            return Err(CrmError::not_supported(format!("cannot refresh {view}: {e}"))
                .with_hint(format!("A column was dropped or changed type since the view was made: DROP VIEW {view}, then call crm.secure_view() again and re-grant it.")));
        }
        match primary_key(c, tbl)? {
            Some((key, _)) => {
                c.update(
                    &format!(
                        "CREATE OR REPLACE TRIGGER crm_secure_write INSTEAD OF INSERT OR UPDATE OR DELETE ON {view}
                         FOR EACH ROW EXECUTE FUNCTION crm.secure_view_write({lit}, {})",
                        quote_literal(&key)
                    ),
                    None,
                    &[],
                )?;
            }
            None => pgrx::notice!("{table} has no single-column primary key: {view} is read-only"),
        }
        Ok(one::<pg_sys::Oid>(c, "SELECT $1::regclass", &[view.as_str().into()])?.expect("the view exists"))
    })?;
    on_catalog(|c| {
        c.update(
            "INSERT INTO crm.secure_views VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET view = excluded.view",
            None,
            &[tbl.into(), view.into()],
        )?;
        Ok(view)
    })
}

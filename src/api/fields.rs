//! Field access administration (DESIGN §3.2, §4) and `crm.secure_view`.

use crm_model::FieldAccess;
use pgrx::prelude::*;

use super::admin::{check_module, profile_id};
use super::authorize::{administer, require_admin};
use crate::audit;
use super::authorize::audited;
use crate::catalog::spi::{exists, one, Client};
use crate::catalog::tables::existing;
use crate::policy::secure_view;
use crate::error::{CrmError, CrmResult, OrRaise, required};

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
fn set_field_access(profile: Option<&str>, module: Option<&str>, field: Option<&str>, access: Option<&str>) {
    let profile = required("profile", profile);
    let module = required("module", module);
    let field = required("field", field);
    let access = required("access", access);
    administer(audit!("set_field_access", profile, module, field, access), |c: Client| {
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
fn set_global_field_access(module: Option<&str>, field: Option<&str>, visible: Option<bool>) {
    let module = required("module", module);
    let field = required("field", field);
    let visible = required("visible", visible);
    administer(audit!("set_global_field_access", module, field, visible), |c: Client| {
        check_field(c, module, field)?;
        if visible {
            c.update("DELETE FROM crm.hidden_fields WHERE module = $1 AND field = $2", None, &[module.into(), field.into()])?;
        } else {
            c.update("INSERT INTO crm.hidden_fields VALUES ($1, $2) ON CONFLICT DO NOTHING", None, &[module.into(), field.into()])?;
        }
        Ok(())
    })
}

/// Creates or refreshes `<table>_secure` (`policy::secure_view`); returns the view.
#[pg_extern(
    sql = "CREATE FUNCTION crm.secure_view(tbl regclass) RETURNS regclass VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn secure_view(tbl: Option<pg_sys::Oid>) -> pg_sys::Oid {
    require_admin().or_raise();
    let oid = tbl.ok_or_else(|| CrmError::null_argument("tbl")).or_raise();
    let tbl = existing(oid).or_raise();
    audited(audit!("secure_view", tbl), || secure_view::make(oid)).or_raise()
}

//! The secure view of a protected table (DESIGN §3.2): `<table>_secure`, whose every column
//! reads `CASE WHEN crm.field_visible(tbl, 'col') THEN col END` and whose writes go through
//! `crm.secure_view_write()` (`enforce::secure_view_write`). Made by the views role,
//! which owns it, from facts the caller (the table's owner) gathers and privileges only the
//! caller can give; the entry point is `crm.secure_view` in `api::fields`.

use pgrx::prelude::*;
use pgrx::Spi;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};

use crate::catalog::spi::{as_caller, exists, on_catalog, one, Client};
use crate::catalog::privileged::{self, ExtensionRole, VIEWS_ROLE};
use crate::catalog::tables::{check_caller_owns_plain_table, existing, primary_key};
use crate::error::{CrmError, CrmResult};

/// What `make` found out as the caller, for the part it does as the views role.
struct Plan {
    table: String,
    view: String,
    /// The table's live columns as (name, type), in order.
    columns: Vec<(String, String)>,
    key: Option<String>,
    owner: String,
    schema: String,
    /// Whether the views role was given CREATE on the schema for this call only.
    lent_create: bool,
    /// The grants of a view crm_access 0.1.0 made, dropped to be made again (see `prepare`).
    adopted_grants: Vec<String>,
}

/// The GRANT statements that give again what `view` grants now (to others than its owner).
fn grants_of(c: &SpiClient<'_>, view: &str) -> CrmResult<Vec<String>> {
    c.select(
        "SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, $1, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END,
                       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
         FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner",
        None,
        &[view.into()],
    )?
    .map(|r| Ok(r.get::<String>(1)?.unwrap_or_default()))
    .collect()
}

/// Create or refresh the secure view of `tbl` (see the module comment); the caller is an
/// authorised admin.
pub fn make(tbl: pg_sys::Oid) -> CrmResult<pg_sys::Oid> {
    let table = existing(tbl)?;
    let registered = on_catalog(|c| {
        if !exists(c, "SELECT 1 FROM crm.protected_tables WHERE tbl = $1", &[tbl.into()])? {
            return Err(CrmError::undefined("protected table", &table).with_hint("Protect it first with crm.protect()."));
        }
        one::<pg_sys::Oid>(c, "SELECT view::oid FROM crm.secure_views WHERE tbl = $1", &[tbl.into()])
    })?;
    let plan = as_caller(|c| prepare(c, tbl, table.clone(), registered))?;
    let built = crate::enforce::opened::with_own_ddl(|| privileged::as_role(ExtensionRole::Views, || Spi::connect_mut(|c| build(c, &plan))));
    // CREATE on the schema was lent for this call only, whatever happened.
    if plan.lent_create {
        as_caller(|c| {
            c.update(&format!("REVOKE CREATE ON SCHEMA {} FROM {VIEWS_ROLE}", plan.schema), None, &[])?;
            Ok(())
        })?;
    }
    let view = built?;
    on_catalog(|c| {
        c.update(
            "INSERT INTO crm.secure_views VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET view = excluded.view",
            None,
            &[tbl.into(), view.into()],
        )?;
        Ok(view)
    })
}

/// As the caller, who must own the table: the facts the view is built from, and the
/// privileges the views role needs, which only the table's owner can give.
fn prepare(c: Client, tbl: pg_sys::Oid, table: String, registered: Option<pg_sys::Oid>) -> CrmResult<Plan> {
    check_caller_owns_plain_table(c, tbl, "make a secure view of")?;
    let row = c.select(
        "SELECT quote_ident(n.nspname), quote_ident(c.relname || '_secure'), c.relowner::regrole::text, n.oid
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        Some(1),
        &[tbl.into()],
    )?;
    let row = row.first();
    let (schema, name, owner): (String, String, String) =
        (row.get(1)?.unwrap_or_default(), row.get(2)?.unwrap_or_default(), row.get(3)?.unwrap_or_default());
    let schema_oid: pg_sys::Oid = row.get(4)?.unwrap_or(pg_sys::InvalidOid);
    let view = format!("{schema}.{name}");
    // Refresh only a view this function made: an object of that name made by someone else
    // would keep its owner, who could redefine it.
    let found = one::<pg_sys::Oid>(c, "SELECT to_regclass($1)::oid", &[view.as_str().into()])?;
    let mut adopted_grants = Vec::new();
    if found.is_some() && found != registered {
        // A view crm_access 0.1.0 made (it kept no registry): a view over this table that
        // masks with crm.field_visible, owned by a superuser (0.1.0 made it as the extension
        // owner) or by the table's owner, who is the caller here. Nobody else can make such
        // a view, so it is made again as the views role, with its grants.
        let made_by_0_1 = exists(
            c,
            "SELECT 1 FROM pg_class v JOIN pg_roles r ON r.oid = v.relowner
             WHERE v.oid = $1 AND v.relkind = 'v' AND (r.rolsuper OR v.relowner = (SELECT relowner FROM pg_class WHERE oid = $2))
               AND pg_get_viewdef(v.oid) LIKE '%crm.field_visible(%'
               AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = (SELECT oid FROM pg_rewrite WHERE ev_class = v.oid) AND d.refobjid = $2)",
            &[found.into(), tbl.into()],
        )?;
        if !made_by_0_1 {
            return Err(CrmError::duplicate("relation", &view)
                .with_detail("crm.secure_view() refreshes only the view it created for this table.")
                .with_hint(format!("Drop or rename {view}, then call crm.secure_view() again.")));
        }
        adopted_grants = grants_of(c, &view)?;
        c.update(&format!("DROP VIEW {view}"), None, &[])?;
    }
    if found.is_some() && found == registered {
        // Ours, but given to another role (a restore with --no-owner gives every object to the
        // role restoring it, which row security may not hold): a superuser gives it back.
        let views = privileged::extension_role(ExtensionRole::Views)?;
        if !exists(c, "SELECT 1 FROM pg_class WHERE oid = $1 AND relowner = $2", &[found.into(), views.into()])? {
            if !exists(c, "SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper", &[])? {
                return Err(CrmError::denied(format!("{view} is not owned by {VIEWS_ROLE}, and only a superuser can give it back"))
                    .with_hint(format!("A superuser runs crm.secure_view({}).", quote_literal(&table))));
            }
            c.update(&format!("ALTER VIEW {view} OWNER TO {VIEWS_ROLE}"), None, &[])?;
        }
    }
    let columns: Vec<(String, String)> = c
        .select(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            None,
            &[tbl.into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
        .collect::<CrmResult<_>>()?;
    let key = primary_key(c, tbl)?.map(|(k, _)| k);
    // The views role reads and writes the table for the view's clients (row security and
    // field checks still apply to it), and needs the schema to create the view in.
    c.update(&format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {VIEWS_ROLE}"), None, &[])?;
    // A child's write reads its parent record (as the writer, under its row security).
    let parent = one::<pg_sys::Oid>(c, "SELECT parent::oid FROM crm.parent_links WHERE child = $1", &[tbl.into()])?;
    if let Some(parent) = parent {
        let parent_table = existing(parent)?;
        if !exists(c, "SELECT 1 WHERE has_table_privilege($1, 'SELECT WITH GRANT OPTION')", &[parent.into()])? {
            return Err(CrmError::denied(format!("{VIEWS_ROLE} needs SELECT on {parent_table}, the parent table of {table}, and you cannot grant it"))
                .with_hint(format!("Have the owner of {parent_table} run GRANT SELECT ON {parent_table} TO {VIEWS_ROLE}, or run crm.secure_view() as them.")));
        }
        c.update(&format!("GRANT SELECT ON {parent_table} TO {VIEWS_ROLE}"), None, &[])?;
    }
    let (has_usage, has_create) = one::<String>(
        c,
        "SELECT has_schema_privilege($1, $2, 'USAGE')::text || has_schema_privilege($1, $2, 'CREATE')::text",
        &[VIEWS_ROLE.into(), schema_oid.into()],
    )?
    .map(|s| (s.starts_with("true"), s.ends_with("true")))
    .unwrap_or_default();
    let may_grant = exists(
        c,
        "SELECT 1 FROM pg_namespace WHERE oid = $1 AND (pg_has_role(nspowner, 'USAGE')
             OR (has_schema_privilege($1, 'USAGE WITH GRANT OPTION') AND has_schema_privilege($1, 'CREATE WITH GRANT OPTION')))",
        &[schema_oid.into()],
    )?;
    if (!has_usage || !has_create) && !may_grant {
        return Err(CrmError::denied(format!("{VIEWS_ROLE} cannot create {view}: it has no CREATE privilege on schema {schema}, and you cannot grant it"))
            .with_hint(format!("Have the owner of schema {schema} run GRANT USAGE, CREATE ON SCHEMA {schema} TO {VIEWS_ROLE}, or run crm.secure_view() as them.")));
    }
    if !has_usage {
        c.update(&format!("GRANT USAGE ON SCHEMA {schema} TO {VIEWS_ROLE}"), None, &[])?;
    }
    if !has_create {
        c.update(&format!("GRANT CREATE ON SCHEMA {schema} TO {VIEWS_ROLE}"), None, &[])?;
    }
    Ok(Plan { table, view, columns, key, owner, schema, lent_create: !has_create, adopted_grants })
}

/// As the views role: create or refresh the view, its write trigger, and the table owner's
/// right to grant it.
fn build(c: Client, plan: &Plan) -> CrmResult<pg_sys::Oid> {
    let Plan { table, view, columns, key, owner, .. } = plan;
    // CREATE OR REPLACE VIEW can only add columns at the end; any other change of the
    // table's columns rebuilds the view, and its grants with it.
    let existing: Vec<(String, String)> = c
        .select(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            None,
            &[view.as_str().into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
        .collect::<CrmResult<_>>()?;
    let mut grants = plan.adopted_grants.clone();
    if !existing.is_empty() && !columns.starts_with(&existing) {
        grants = grants_of(c, view)?;
        c.update(&format!("DROP VIEW {view}"), None, &[])?;
    }
    let lit = quote_literal(table);
    let list: Vec<String> = columns
        .iter()
        .map(|(col, _)| {
            let q = quote_identifier(col);
            format!("CASE WHEN crm.field_visible({lit}::regclass, {}) THEN {q} END AS {q}", quote_literal(col))
        })
        .collect();
    // Not security_invoker: the view reads the table as its owner, the views role, so that a
    // client needs no privilege on the table. Row security applies to the views role for the
    // session's acting user, exactly as to the client; owned by a role it does not hold (a
    // restore with --no-owner), the view refuses to be read (`secure_view_intact`).
    // (The update from 0.1.0 makes its views again before that function exists, its script
    // being frozen; the update to 0.3.0 then makes them again with it.)
    let intact = if exists(c, "SELECT 1 WHERE to_regprocedure('crm.secure_view_intact(regclass)') IS NOT NULL", &[])? {
        format!(" WHERE crm.secure_view_intact({lit}::regclass)")
    } else {
        String::new()
    };
    c.update(
        &format!("CREATE OR REPLACE VIEW {view} WITH (security_invoker = false) AS SELECT {} FROM {table}{intact}", list.join(", ")),
        None,
        &[],
    )?;
    for grant in grants {
        c.update(&grant, None, &[])?;
    }
    match key {
        Some(_) => {
            c.update(
                &format!("CREATE OR REPLACE TRIGGER crm_secure_write INSTEAD OF INSERT OR UPDATE OR DELETE ON {view} FOR EACH ROW EXECUTE FUNCTION crm.secure_view_write()"),
                None,
                &[],
            )?;
        }
        None => pgrx::notice!("{table} has no single-column primary key: {view} is read-only"),
    }
    // Whoever may grant the table may grant its view.
    c.update(&format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {view} TO {} WITH GRANT OPTION", quote_identifier(owner)), None, &[])?;
    Ok(one::<pg_sys::Oid>(c, "SELECT $1::regclass", &[view.as_str().into()])?.expect("the view exists"))
}

/// The condition of every secure view: its table's registered secure view is owned by the
/// views role, so that the table's row security holds for what it shows. A view given to
/// another role shows every row to whoever may read it (the owner a restore with
/// `--no-owner` gives it is the superuser restoring it; issue 27): it is refused, loudly,
/// until a superuser runs `crm.secure_view()` again. IMMUTABLE so that the planner folds it
/// to `true` while planning, as often as it plans a query of the view: a plan of the view
/// depends on the view, so a change of its owner plans it again.
#[pg_extern(sql = "CREATE FUNCTION crm.secure_view_intact(tbl regclass) RETURNS boolean IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';")]
fn secure_view_intact(tbl: Option<pg_sys::Oid>) -> bool {
    let Some(tbl) = tbl else { return false };
    let views = privileged::extension_role(ExtensionRole::Views).unwrap_or_else(|e| e.raise());
    const WRONG_OWNER: &str = "SELECT CASE WHEN c.relowner OPERATOR(pg_catalog.=) $2 THEN 0 ELSE c.oid::pg_catalog.int8 END
                               FROM crm.secure_views s JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) s.view::pg_catalog.oid
                               WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1";
    let found = privileged::as_invoker(|| {
        crate::catalog::latest::execute_now(
            WRONG_OWNER,
            &[(pg_sys::OIDOID, pg_sys::Datum::from(tbl), false), (pg_sys::OIDOID, pg_sys::Datum::from(views), false)],
            true,
        )
    })
    .unwrap_or_else(|e| e.raise());
    let table = crate::catalog::tables::qualified_name(tbl).unwrap_or_else(|| tbl.to_u32().to_string());
    match found.1 {
        Some(0) => true,
        Some(view) => CrmError::prerequisite(format!(
            "the secure view {} is not owned by {VIEWS_ROLE}: it would show every row of {table}",
            crate::catalog::tables::qualified_name(pg_sys::Oid::from(view as u32)).unwrap_or_default()
        ))
        .with_detail("A restore with --no-owner gives every object to the role restoring it, and row security does not hold that role.")
        .with_hint(format!("A superuser runs crm.secure_view({}) to give it back.", quote_literal(&table)))
        .raise(),
        None => CrmError::prerequisite(format!("{table} has no secure view made by crm.secure_view()"))
            .with_hint(format!("crm.secure_view({}) makes it.", quote_literal(&table)))
            .raise(),
    }
}

//! Parent links between protected tables (an opportunity's account, DESIGN §3.1).
//!
//! `crm.link_parent(child, parent_column, parent)` makes the child keep its parent record's
//! owner in an indexed `crm_parent_owner` column. The child's trigger derives it from the
//! parent row as the user sees it (so it cannot be forged), refuses to create a child under,
//! or move it to, a parent the user cannot read, and checks owner changes, which the edit
//! policy lets through for users who reach the child through its parent. The parent's
//! trigger runs as the extension owner, so a new parent owner reaches every child.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::PgRelation;

use super::protect::attach_policies;
use crate::api::admin::{has_index_led_by, one, primary_key};
use crate::api::authorize::administer;
use crate::error::{CrmError, CrmResult};

struct Table {
    oid: pg_sys::Oid,
    name: String,
    owner_column: String,
}

fn protected(c: &SpiClient<'_>, oid: pg_sys::Oid) -> CrmResult<Table> {
    let name = one::<String>(c, "SELECT $1::regclass::text", &[oid.into()])?.unwrap_or_default();
    let owner_column = one::<String>(c, "SELECT owner_column::text FROM crm.protected_tables WHERE tbl = $1", &[oid.into()])?
        .ok_or_else(|| CrmError::undefined("protected table", &name).with_hint("Protect it first with crm.protect()."))?;
    Ok(Table { oid, name, owner_column })
}

/// The type of a column, or an "undefined column" error.
fn column_type(c: &SpiClient<'_>, t: &Table, column: &str) -> CrmResult<String> {
    one::<String>(
        c,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[t.oid.into(), column.into()],
    )?
    .ok_or_else(|| CrmError::undefined_column(&t.name, column))
}

#[pg_extern]
fn link_parent(child: PgRelation, parent_column: &str, parent: PgRelation) {
    let (child_oid, parent_oid) = (child.oid(), parent.oid());
    // ALTER TABLE refuses a relation this session holds open.
    drop(child);
    drop(parent);
    administer(|c: &mut SpiClient<'_>| {
        let (child, parent) = (protected(c, child_oid)?, protected(c, parent_oid)?);
        if child_oid == parent_oid {
            return Err(CrmError::invalid(format!("{} cannot be its own parent", child.name)));
        }
        let Some((key, key_type)) = primary_key(c, parent_oid)? else {
            return Err(CrmError::not_supported(format!("{} has no single-column primary key for children to point at", parent.name)));
        };
        let link_type = column_type(c, &child, parent_column)?;
        if link_type != key_type {
            return Err(CrmError::datatype_mismatch(format!(
                "{}.{parent_column} is {link_type}, but the key of {} is {key_type}",
                child.name, parent.name
            )));
        }
        let (pc, pk) = (quote_identifier(parent_column), quote_identifier(&key));
        let (child_owner, parent_owner) = (quote_identifier(&child.owner_column), quote_identifier(&parent.owner_column));
        let (child_lit, parent_lit) = (quote_literal(&child.name), quote_literal(&parent.name));
        let (ct, pt) = (&child.name, &parent.name);
        let suffix = child_oid.to_u32();
        // A parent's change of owner (or deletion) updates its children by this column.
        if !has_index_led_by(c, child_oid, parent_column)? {
            c.update(&format!("CREATE INDEX ON {} ({pc})", child.name), None, &[])?;
        }
        c.update(
            &format!(
                "ALTER TABLE {ct} ADD COLUMN IF NOT EXISTS crm_parent_owner bigint;
                 CREATE INDEX IF NOT EXISTS {index} ON {ct} (crm_parent_owner);

                 -- As the invoker: the parent is looked up through its own row security, so
                 -- visible means exactly what the user could SELECT (a superuser sees all).
                 CREATE OR REPLACE FUNCTION crm.keep_parent_owner_{suffix}() RETURNS trigger
                 LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
                 DECLARE parent_owner bigint;
                 BEGIN
                     IF NEW.{pc} IS NULL THEN
                         NEW.crm_parent_owner := NULL;
                     ELSE
                         SELECT p.{parent_owner} INTO parent_owner FROM {pt} p WHERE p.{pk} = NEW.{pc};
                         IF FOUND THEN
                             NEW.crm_parent_owner := parent_owner;
                         ELSIF TG_OP = 'INSERT' OR NEW.{pc} IS DISTINCT FROM OLD.{pc} THEN
                             RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                                 MESSAGE = format('no %s record with %s = %s is visible to you', {parent_lit}, {key_lit}, NEW.{pc}),
                                 HINT = 'A record can be created under, or moved to, only a parent record you can read.';
                         ELSE
                             NEW.crm_parent_owner := OLD.crm_parent_owner;
                         END IF;
                     END IF;
                     IF TG_OP = 'UPDATE' AND NEW.{child_owner} IS DISTINCT FROM OLD.{child_owner}
                        AND row_security_active({child_lit}::regclass) THEN
                         PERFORM crm.assert_can_assign({child_lit}::regclass, 'edit', NEW.{child_owner});
                     END IF;
                     RETURN NEW;
                 END $f$;
                 CREATE OR REPLACE TRIGGER crm_keep_parent_owner BEFORE INSERT OR UPDATE ON {ct}
                     FOR EACH ROW EXECUTE FUNCTION crm.keep_parent_owner_{suffix}();

                 CREATE OR REPLACE FUNCTION crm.push_parent_owner_{suffix}() RETURNS trigger
                 LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
                 BEGIN
                     IF TG_OP = 'DELETE' THEN
                         UPDATE {ct} SET crm_parent_owner = NULL WHERE {pc} = OLD.{pk};
                     ELSE
                         UPDATE {ct} SET crm_parent_owner = NEW.{parent_owner} WHERE {pc} = NEW.{pk};
                     END IF;
                     RETURN NULL;
                 END $f$;
                 CREATE OR REPLACE TRIGGER crm_push_parent_owner_{suffix} AFTER UPDATE OF {parent_owner} OR DELETE ON {pt}
                     FOR EACH ROW EXECUTE FUNCTION crm.push_parent_owner_{suffix}();
                 REVOKE ALL ON FUNCTION crm.push_parent_owner_{suffix}() FROM PUBLIC;

                 UPDATE {ct} AS c SET crm_parent_owner = p.{parent_owner} FROM {pt} p WHERE p.{pk} = c.{pc};",
                index = quote_identifier(&format!("{}_crm_parent_owner_idx", ct.rsplit('.').next().unwrap_or(ct).trim_matches('"'))),
                key_lit = quote_literal(&key),
            ),
            None,
            &[],
        )?;
        c.update(
            "INSERT INTO crm.parent_links VALUES ($1, $2, $3) ON CONFLICT (child) DO UPDATE SET parent_column = excluded.parent_column, parent = excluded.parent",
            None,
            &[child_oid.into(), parent_column.into(), parent_oid.into()],
        )?;
        attach_policies(c, child_oid, ct, &child.owner_column, true)
    })
}

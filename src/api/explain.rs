//! `crm.explain_access` (why a user can or cannot reach a record) and `crm.who_can` (who
//! can, for access reviews). Both decide with the engine, the same one policies use.
//!
//! The record is read as the caller, through row security (DESIGN §5): a record the caller
//! cannot read is exactly like a record that does not exist, whoever asks, and nothing of
//! the caller's choosing (the id's type, a cast, an operator) ever runs with more than the
//! caller's rights. The id is given as the key's own type, or as a built-in type (an integer
//! or text literal) that the key type's input function reads; no cast is looked up. Every
//! check that needs no data (the action, the table, who may ask) comes before the read.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::AnyElement;

use super::authorize::require_admin_to;
use crate::catalog::history;
use crate::catalog::spi::{as_caller, exists, on_catalog};
use crate::enforce::restrictions::Kind;
use crate::catalog::tables::{existing, primary_key};
use crate::error::{required, CrmError, CrmResult, OrRaise};
use crate::session::cache::{self, Loaded};
use crate::session::identity;
use crm_model::{Action, Decision, Model, Party, RecordShare, RuleAccess};
use pgrx::datum::TimestampWithTimeZone;

/// `id` as a datum of `key_type`: as it is when it has that type, else through its text form
/// when its type is built in (so its output function is PostgreSQL's own).
pub(super) fn key_datum(id: &AnyElement, key_type: pg_sys::Oid, table: &str) -> CrmResult<pg_sys::Datum> {
    if id.oid() == key_type {
        return Ok(id.datum());
    }
    if id.oid().to_u32() >= pg_sys::FirstNormalObjectId {
        // SAFETY: format_type_be returns a palloc'd string for any type oid.
        let name = |t: pg_sys::Oid| unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(t)).to_string_lossy().into_owned() };
        return Err(CrmError::datatype_mismatch(format!("the id must be of type {} (the key of {table}), or a built-in type such as text, not {}", name(key_type), name(id.oid())))
            .with_hint("Pass the key as a literal, for example crm.explain_access('sales.leads', 41) or crm.explain_access('sales.leads', 'key'::text)."));
    }
    // SAFETY: output and input functions looked up from the type catalog; the text passed
    // between them is a palloc'd C string, and the input function validates it.
    unsafe {
        let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
        pg_sys::getTypeOutputInfo(id.oid(), &mut output, &mut varlena);
        let text = pg_sys::OidOutputFunctionCall(output, id.datum());
        let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::getTypeInputInfo(key_type, &mut input, &mut ioparam);
        Ok(pg_sys::OidInputFunctionCall(input, text, ioparam, -1))
    }
}

/// A record as decisions read it: its owner and, for a table linked to a parent, its parent
/// record's owner; and the text of the columns restriction rules read (DESIGN §9).
#[derive(Clone)]
struct Record {
    owner: i64,
    parent_owner: Option<i64>,
    columns: Vec<(String, Option<String>)>,
    /// Its shares (DESIGN §9) made while its owner was the current one, each with when it was
    /// made (PostgreSQL microseconds).
    shares: Vec<(RecordShare, i64)>,
    /// The same of its parent record, for a linked table (they reach it, DESIGN §9).
    parent_shares: Vec<(RecordShare, i64)>,
    /// Its key's text, and its link column's (the parent's key) for a linked table.
    key: Option<String>,
    link: Option<String>,
}

impl Record {
    /// The shares that stood at `at`: made by then and not ended. A share removed since is not
    /// known (the log keeps it, the record does not).
    fn shares_at(&self, at: i64) -> Vec<RecordShare> {
        Self::standing(&self.shares, at)
    }

    fn standing(shares: &[(RecordShare, i64)], at: i64) -> Vec<RecordShare> {
        shares.iter().filter(|(s, made)| *made <= at && s.until.is_none_or(|u| at < u)).map(|(s, _)| s.clone()).collect()
    }
}

/// The shares of `tbl`'s record whose key's text is `key`, made while `owner` owned it (`None`:
/// whoever owned it; in a catalog rebuilt for a past moment, a record's shares were always
/// made under its owner then).
fn record_shares(tbl: pg_sys::Oid, key: &str, owner: Option<i64>) -> CrmResult<Vec<(RecordShare, i64)>> {
    const SHARES: &str = "SELECT id, kind, target_id, access, ((extract(epoch FROM until) - 946684800) * 1000000)::int8,
                                 coalesce(shared_by, 0), ((extract(epoch FROM shared_at) - 946684800) * 1000000)::int8
                          FROM crm.shares WHERE tbl = $1 AND record_id = $2 AND ($3 IS NULL OR owner_id = $3) ORDER BY id";
    on_catalog(|c| {
        let mut out = Vec::new();
        for r in c.select(SHARES, None, &[tbl.into(), key.into(), owner.into()])? {
            let (Some(id), Some(kind), Some(target), Some(access)) = (r.get::<i64>(1)?, r.get::<String>(2)?, r.get::<i64>(3)?, r.get::<String>(4)?) else { continue };
            let receiver = match kind.as_str() {
                "user" => Party::User(target),
                "group" => Party::Group(target),
                "role" => Party::Role(target),
                _ => Party::RoleAndSubordinates(target),
            };
            let access = if access == "read_write" { RuleAccess::ReadWrite } else { RuleAccess::Read };
            let share = RecordShare { id, receiver, access, until: r.get::<i64>(5)?, shared_by: r.get::<i64>(6)?.unwrap_or(0) };
            out.push((share, r.get::<i64>(7)?.unwrap_or(i64::MIN)));
        }
        Ok(out)
    })
}

impl crm_model::Row for Record {
    fn value(&self, column: &str) -> Option<crm_model::Value<'_>> {
        self.columns.iter().find(|(c, _)| c == column).map(|(_, v)| crm_model::Value::Text(v.as_deref()))
    }
}

/// The record of `tbl` whose primary key is `id`, as the caller can read it, with the columns
/// the restriction rules of `restricted` (every catalog the record is judged under) read.
fn record_owner(m: &Loaded, tbl: pg_sys::Oid, table: &str, id: &AnyElement, restricted: &[&Model]) -> CrmResult<Option<Record>> {
    let column = m.owner_column_of(tbl).ok_or_else(|| CrmError::undefined("protected table", table))?.to_string();
    let linked = m.parent_module_of(tbl).is_some();
    let mut wanted: Vec<String> = restricted.iter().flat_map(|model| model.catalog().restriction_rules.iter().map(|r| r.column.clone())).collect();
    wanted.sort();
    wanted.dedup();
    as_caller(|c| {
        let Some((key, key_type)) = primary_key(c, tbl)? else {
            return Err(CrmError::not_supported(format!("{table} has no single-column primary key to find the record by")));
        };
        let value = key_datum(id, key_type, table)?;
        let parent = if linked { "crm_parent_owner" } else { "NULL::bigint" };
        let link = m.link_of(tbl).map(|l| (pg_sys::Oid::from(l.parent), l.column.clone()));
        let link_text = match &link {
            Some((_, column)) => format!("{}::text", quote_identifier(column)),
            None => "NULL::text".to_string(),
        };
        // Only columns the table has; each is read in its own type and written as its text
        // by `Kind` (no cast is looked up), and one of another type reads as NULL (refuses).
        let present: Vec<&String> = wanted
            .iter()
            .filter(|w| exists(c, "SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped", &[tbl.into(), w.as_str().into()]).unwrap_or(false))
            .collect();
        let extra: String = present.iter().map(|w| format!(", {}", quote_identifier(w))).collect();
        let sql = format!("SELECT {}, {parent}, {k}::text, {link_text}{extra} FROM {table} WHERE {k} = $1", quote_identifier(&column), k = quote_identifier(&key));
        // SAFETY: `value` is a datum of `key_type`, valid for the rest of this call.
        let rows = c.select(&sql, Some(1), &[unsafe { DatumWithOid::new(value, key_type) }])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let types: Vec<pg_sys::Oid> = (0..present.len()).map(|i| rows.column_type_oid(i + 5).map(|t| t.value())).collect::<Result<_, _>>()?;
        let first = rows.first();
        let (owner, parent_owner) = first.get_two::<i64, i64>()?;
        let key_text = first.get::<String>(3)?;
        let link_text = first.get::<String>(4)?;
        let mut columns = Vec::new();
        for (i, name) in present.iter().enumerate() {
            let text = match (Kind::of(types[i]), first.get_datum_by_ordinal(i + 5)?) {
                // SAFETY: a non-null datum of the column's type, which `kind` is of.
                (Some(kind), Some(d)) => unsafe { kind.text(d) },
                _ => None,
            };
            columns.push((name.to_string(), text));
        }
        let owner = owner.unwrap_or(i64::MIN);
        let shares = match &key_text {
            Some(k) => record_shares(tbl, k, Some(owner))?,
            None => Vec::new(),
        };
        // A parent's shares made while its owner was the one the child keeps.
        let parent_shares = match (&link, &link_text, parent_owner) {
            (Some((parent, _)), Some(k), Some(o)) => record_shares(*parent, k, Some(o))?,
            _ => Vec::new(),
        };
        Ok(Some(Record { owner, parent_owner, columns, shares, parent_shares, key: key_text, link: link_text }))
    })
}

/// The engine's decision for a record, through its parent's owner when the table is linked.
fn decide(m: &Loaded, tbl: pg_sys::Oid, module: &str, user: Option<i64>, action: Action, record: &Record) -> Decision {
    let at = crate::session::plans::decision_moment();
    let shares = (record.shares_at(at), Record::standing(&record.parent_shares, at));
    decide_in(&m.model, module, m.parent_module_of(tbl), user, action, record, (&shares.0, &shares.1), at)
}

/// The same in any model, at the moment `at`, with the record's shares and its parent's that
/// stood then: `parent` is the module of the parent table, for a linked table; the
/// restriction rules of the module have the last word.
#[allow(clippy::too_many_arguments)]
fn decide_in(
    model: &Model,
    module: &str,
    parent: Option<&str>,
    user: Option<i64>,
    action: Action,
    record: &Record,
    (shares, parent_shares): (&[RecordShare], &[RecordShare]),
    at: i64,
) -> Decision {
    let d = match parent {
        Some(parent) => model.decide_child_with_shares(user, (module, parent), action, (record.owner, record.parent_owner), (shares, parent_shares), at),
        None => model.decide_with_shares(user, module, action, record.owner, shares, at),
    };
    model.restrict(user, module, d, record)
}

/// Who could have acted on the record under the catalog as it stood at `at` (rebuilt from
/// the audit log), judged on the record's current owner; administrators only.
#[pg_extern(
    sql = "CREATE FUNCTION crm.who_could(tbl regclass, id anyelement, action text, at timestamptz)
           RETURNS SETOF text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn who_could(tbl: Option<pg_sys::Oid>, id: Option<AnyElement>, action: Option<&str>, at: Option<TimestampWithTimeZone>) -> SetOfIterator<'static, String> {
    require_admin_to("review who could access a record").or_raise();
    let at = required("at", at);
    let (tbl, id, action, table) = target(tbl, id, action).or_raise();
    let m = cache::current(true).or_raise();
    if m.module_of(tbl).is_none() {
        CrmError::undefined("protected table", &table).raise()
    }
    // The record first: one the caller cannot read is refused before the log is read.
    let Some(now) = record_owner(&m, tbl, &table, &id, &[]).or_raise() else { no_such_record(&table).raise() };
    let past = Past::at(tbl, &table, at, &now).or_raise();
    let Some(record) = record_owner(&m, tbl, &table, &id, &[&past.model]).or_raise() else { no_such_record(&table).raise() };
    let mut names: Vec<String> =
        past.model.users().filter(|u| past.decide(Some(u.owner_id), action, &record).allowed).map(|u| u.name.to_string()).collect();
    names.sort();
    SetOfIterator::new(names)
}

/// The model of a past moment, with the module `tbl` belonged to then and its parent's, and
/// the shares of the record and of its parent record that stood then (those removed since
/// too: the audit log keeps them).
struct Past {
    model: Model,
    module: String,
    parent: Option<String>,
    at: i64,
    shares: Vec<(RecordShare, i64)>,
    parent_shares: Vec<(RecordShare, i64)>,
}

impl Past {
    /// `record` is the record as it is now, for its key and link.
    fn at(tbl: pg_sys::Oid, table: &str, at: TimestampWithTimeZone, record: &Record) -> CrmResult<Past> {
        let shares_then = || -> CrmResult<_> {
            let own = match &record.key {
                Some(k) => record_shares(tbl, k, None)?,
                None => Vec::new(),
            };
            let parent = on_catalog(|c| crate::catalog::spi::one::<pg_sys::Oid>(c, "SELECT parent::oid FROM crm.parent_links WHERE child = $1", &[tbl.into()]))?;
            let parent = match (parent, &record.link) {
                (Some(p), Some(k)) => record_shares(p, k, None)?,
                _ => Vec::new(),
            };
            Ok((own, parent))
        };
        let (past, (shares, parent_shares)) = crate::session::cache::rebuilding(|| history::catalog_at(at, shares_then))?;
        let parent = past.parent_links.get(&tbl.to_u32()).and_then(|l| past.catalog.protected_tables.get(&l.parent)).map(|(m, _)| m.clone());
        let Some((module, _)) = past.catalog.protected_tables.get(&tbl.to_u32()).cloned() else {
            return Err(CrmError::prerequisite(format!("{table} was not protected by crm_access at {at}")));
        };
        // Grants that had ended by `at` count for nothing (DESIGN §9).
        let model = Model::compile_at(past.catalog, at.into()).map_err(|e| CrmError::broken_catalog(e.to_string()))?;
        Ok(Past { model, module, parent, at: at.into(), shares, parent_shares })
    }

    fn decide(&self, user: Option<i64>, action: Action, record: &Record) -> Decision {
        let shares = (Record::standing(&self.shares, self.at), Record::standing(&self.parent_shares, self.at));
        decide_in(&self.model, &self.module, self.parent.as_deref(), user, action, record, (&shares.0, &shares.1), self.at)
    }
}

fn no_such_record(table: &str) -> CrmError {
    CrmError::not_found(format!("no record of {table} with that id is visible to you"))
}

/// The checks that need no data: the arguments, and that `tbl` is a protected table.
fn target(tbl: Option<pg_sys::Oid>, id: Option<AnyElement>, action: Option<&str>) -> CrmResult<(pg_sys::Oid, AnyElement, Action, String)> {
    let tbl = tbl.ok_or_else(|| CrmError::null_argument("tbl"))?;
    let id = id.ok_or_else(|| CrmError::null_argument("id"))?;
    let action = action.ok_or_else(|| CrmError::null_argument("action"))?;
    let action: Action = action.parse().map_err(|e: crm_model::UnknownWord| CrmError::invalid(e.to_string()))?;
    Ok((tbl, id, action, existing(tbl)?))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.explain_access(tbl regclass, id anyelement, action text DEFAULT 'read', user_name text DEFAULT NULL, at timestamptz DEFAULT NULL)
           RETURNS text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn explain_access(tbl: Option<pg_sys::Oid>, id: Option<AnyElement>, action: Option<&str>, user_name: Option<&str>, at: Option<TimestampWithTimeZone>) -> String {
    let (tbl, id, action, table) = target(tbl, id, action).or_raise();
    let m = cache::current(true).or_raise();
    let Some(module) = m.module_of(tbl).map(str::to_string) else { CrmError::undefined("protected table", &table).raise() };
    if let Some(at) = at {
        // Rebuilding a past catalog is an administrator's review, whoever it is about.
        require_admin_to("review access at a past moment").or_raise();
        // The record first: one the caller cannot read is refused before the log is read.
        let Some(now) = record_owner(&m, tbl, &table, &id, &[]).or_raise() else { no_such_record(&table).raise() };
        let past = Past::at(tbl, &table, at, &now).or_raise();
        let Some(record) = record_owner(&m, tbl, &table, &id, &[&past.model]).or_raise() else { no_such_record(&table).raise() };
        let user = match user_name {
            Some(name) => match past.model.user_by_name(name) {
                Some(u) => Some(u.owner_id),
                None => CrmError::undefined("CRM user", name).with_detail(format!("No user had that name at {at}.")).raise(),
            },
            None => identity::acting_user(&m).or_raise().ok().map(|u| u.owner_id),
        };
        let d = past.decide(user, action, &record);
        return format!("{}: {}", if d.allowed { "allowed" } else { "denied" }, d.reason);
    }
    let acting = identity::acting_user(&m).or_raise().ok().map(|u| u.owner_id);
    const REVIEW: &str = "review another user's access";
    let (user, privileged) = match user_name {
        Some(name) => {
            let Some(u) = m.model.user_by_name(name) else {
                require_admin_to(REVIEW).or_raise();
                CrmError::undefined("CRM user", name).raise()
            };
            let privileged = require_admin_to(REVIEW).is_ok();
            if Some(u.owner_id) != acting && !privileged {
                require_admin_to(REVIEW).or_raise();
            }
            (Some(u.owner_id), privileged)
        }
        None => (acting, require_admin_to(REVIEW).is_ok()),
    };
    let Some(record) = record_owner(&m, tbl, &table, &id, &[&m.model]).or_raise() else { no_such_record(&table).raise() };
    // Row security let the caller read it; a user asking about their own access must also be
    // one who may read it (the caller's row security and the user's are the same then).
    if !privileged && user.is_some() && !decide(&m, tbl, &module, user, Action::Read, &record).allowed {
        no_such_record(&table).raise();
    }
    let d = decide(&m, tbl, &module, user, action, &record);
    format!("{}: {}", if d.allowed { "allowed" } else { "denied" }, d.reason)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.who_can(tbl regclass, id anyelement, action text DEFAULT 'read')
           RETURNS SETOF text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn who_can(tbl: Option<pg_sys::Oid>, id: Option<AnyElement>, action: Option<&str>) -> SetOfIterator<'static, String> {
    require_admin_to("review who can access a record").or_raise();
    let (tbl, id, action, table) = target(tbl, id, action).or_raise();
    let m = cache::current(true).or_raise();
    let Some(module) = m.module_of(tbl).map(str::to_string) else { CrmError::undefined("protected table", &table).raise() };
    let Some(record) = record_owner(&m, tbl, &table, &id, &[&m.model]).or_raise() else { no_such_record(&table).raise() };
    let mut names: Vec<String> = m
        .model
        .users()
        .filter(|u| decide(&m, tbl, &module, Some(u.owner_id), action, &record).allowed)
        .map(|u| u.name.to_string())
        .collect();
    names.sort();
    SetOfIterator::new(names)
}

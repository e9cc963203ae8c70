//! One compile per catalog change, shared by every backend (issue 28; sql/published.sql).
//!
//! A transaction that changed the catalog compiles the model its commit leaves behind, in its
//! pre-commit (`compile`, before it takes the commit lock, so planners elsewhere do not wait
//! for the compile), and writes the model's bytes (`Model::to_bytes`) into
//! `crm.compiled_model` under the commit lock (`write`): the bytes commit with the change they
//! reflect, or not at all. Every other backend, on a primary or a hot standby, reads them
//! (`read`) instead of loading and compiling the whole catalog.
//!
//! Why the bytes are right: every catalog commit (its trigger is ENABLE ALWAYS, so also a
//! replica's apply and a restore's load) replaces the rows it saw when it loaded the catalog
//! with one row, under the exclusive commit lock; committers compile one at a time (a compile
//! lock of their own), and one whose compile saw other rows than those visible under the
//! commit lock publishes a row without bytes instead. A prepared transaction cannot take the
//! lock (it would hold it until COMMIT PREPARED): it adds a row without bytes, and its COMMIT
//! PREPARED publishes again. A reader uses the bytes only when exactly one row with bytes is visible, in
//! the snapshot it reads the bindings in; anything else (no row yet, a prepared commit's row, a
//! catalog that did not compile, bytes of another format or another release of the library,
//! of another database's relations, or compiled for a later moment than the statement's, or
//! past a grant's end) and it compiles the catalog itself, as before.

use std::collections::{BTreeMap, HashMap, HashSet};

use crm_model::{Model, OwnerId};
use pgrx::prelude::*;
use serde::Deserialize;

use super::load::{self, ParentLink, PUBLISHED_JSON};
use super::privileged;
use crate::error::{CrmError, CrmResult};

/// What a model read from bytes is completed with (`load::PUBLISHED_JSON`).
#[derive(Debug, Deserialize)]
pub struct Bindings {
    db_role_map: BTreeMap<u32, OwnerId>,
    trusted_roles: Vec<u32>,
    protected_tables: Vec<u32>,
    pub parent_links: HashMap<u32, ParentLink>,
    pub catalog_relids: HashSet<u32>,
    pub assert_fn: u32,
}

/// Whether this database has the table (a library newer than the installed SQL, before
/// `ALTER EXTENSION crm_access UPDATE`, works without it).
fn present() -> bool {
    // SAFETY: syscache lookups by name.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        schema != pg_sys::InvalidOid && pg_sys::get_relname_relid(c"compiled_model".as_ptr(), schema) != pg_sys::InvalidOid
    }
}

/// A row of `crm.compiled_model`: id, compiled for (timestamptz microseconds), the model its
/// bytes hold (if this library compiled them and they read as a model), the bindings as JSON,
/// and the library that compiled it.
type Row = (i64, i64, Option<Model>, Option<String>, Option<String>);

/// This library, as it signs the models it publishes: a model is read only by the release that
/// compiled it, since another may compile the same catalog otherwise (bytes of the same format
/// from a release with a fix in its compile would carry the old decisions).
const LIBRARY: &str = concat!("crm_access ", env!("CARGO_PKG_VERSION"));

/// The rows (`load::PUBLISHED_JSON`), as the catalog role, under the active snapshot.
fn rows() -> CrmResult<Vec<Row>> {
    privileged::as_catalog_role(|| {
        // SAFETY: a complete SPI connect/execute/finish; the values are copied out (the model
        // decoded straight from the detoasted bytes, not from a copy of them: a copy of 400 kB
        // grew every backend's private memory) before SPI_finish frees them.
        unsafe {
            pg_sys::SPI_connect();
            let status = pg_sys::SPI_execute(PUBLISHED_JSON.as_ptr(), true, 0);
            if status != pg_sys::SPI_OK_SELECT as i32 {
                pg_sys::SPI_finish();
                return Err(CrmError::broken_catalog(format!("cannot read crm.compiled_model (SPI status {status})")));
            }
            let mut rows = Vec::new();
            let table = &*pg_sys::SPI_tuptable;
            for i in 0..pg_sys::SPI_processed as usize {
                let row = *table.vals.add(i);
                let mut null = false;
                let id = pg_sys::SPI_getbinval(row, table.tupdesc, 1, &mut null).value() as i64;
                let at = pg_sys::SPI_getbinval(row, table.tupdesc, 2, &mut null).value() as i64;
                let json = pg_sys::SPI_getvalue(row, table.tupdesc, 4);
                let json = (!json.is_null()).then(|| std::ffi::CStr::from_ptr(json).to_string_lossy().into_owned());
                let library = pg_sys::SPI_getvalue(row, table.tupdesc, 5);
                let library = (!library.is_null()).then(|| std::ffi::CStr::from_ptr(library).to_string_lossy().into_owned());
                // Bytes another release compiled are not read at all.
                let model = if library.as_deref() == Some(LIBRARY) {
                    let datum = pg_sys::SPI_getbinval(row, table.tupdesc, 3, &mut null);
                    <&[u8] as FromDatum>::from_datum(datum, null).and_then(Model::from_bytes)
                } else {
                    None
                };
                rows.push((id, at, model, json, library));
            }
            pg_sys::SPI_finish();
            Ok(rows)
        }
    })
}

/// The model the latest catalog commit compiled, with today's bindings, for a decision at
/// `at`; `None` when there is none this backend may use (it then compiles the catalog).
pub fn read(at: i64) -> CrmResult<Option<(Model, Bindings)>> {
    // A transaction that changed the catalog decides with its own changes, which no commit
    // has published. SAFETY: reads a flag of the current transaction.
    if super::commits::changed_here() || !present() || unsafe { pg_sys::IsInParallelMode() } {
        return Ok(None);
    }
    // One snapshot for the rows and the check of a restore's references, taken after
    // invalidations were accepted (as `load::load`); popped on success and on error alike (an
    // error aborts the transaction, which pops active snapshots itself).
    let rows = unsafe {
        pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
        let read = rows().and_then(|rows| Ok((rows, super::restore::problems()?)));
        pg_sys::PopActiveSnapshot();
        let (rows, problems) = read?;
        if let Some(problems) = problems {
            return Err(super::restore::incomplete(problems));
        }
        rows
    };
    let Ok([(_, compiled_at, Some(mut model), Some(bindings), Some(library))]) = <[Row; 1]>::try_from(rows) else { return Ok(None) };
    if compiled_at > at || library != LIBRARY || model.valid_until().is_some_and(|until| until <= at) {
        return Ok(None);
    }
    let bindings: Bindings = serde_json::from_str(&bindings).map_err(|e| CrmError::broken_catalog(format!("cannot read the catalog bindings: {e}")))?;
    // The bytes name relations by oid: only this database's, as they are now.
    let tables: HashSet<u32> = bindings.protected_tables.iter().copied().collect();
    if model.catalog().protected_tables.keys().copied().collect::<HashSet<u32>>() != tables {
        return Ok(None);
    }
    model.set_role_bindings(bindings.db_role_map.clone(), bindings.trusted_roles.clone());
    Ok(Some((model, bindings)))
}

/// A model compiled at pre-commit: for the moment `at`, from the catalog beside the rows
/// `seen`, in `ms`; `bytes` is `None` when it did not compile (readers then compile themselves,
/// and fail closed with the reason) or was not compiled (`too_soon`).
pub struct Compiled {
    at: i64,
    ms: f64,
    seen: Vec<i64>,
    bytes: Option<Vec<u8>>,
    built: Built,
}

/// With `crm.compile_spacing` set (superusers; 0, off, by default), a session's catalog commit
/// compiles only once that many times its last compile's duration has passed since that compile
/// began, and its commits in between publish a row without bytes (every backend compiles, as
/// before models were published): for a script of thousands of small catalog commits (8,000
/// group changes at 20,000 users, each compiling for 70 ms, take minutes; spaced 4, a fifth of
/// the time). Off by default because readers pay for every commit that does not publish: eight
/// sessions sharing calendars in a loop made a read's median 0.5 ms with every commit compiling
/// (the committers queueing on the compile lock), 264-298 ms spaced (readers compiling after
/// nearly every change), 505 ms with no commit publishing.
pub static SPACING: pgrx::GucSetting<f64> = pgrx::GucSetting::<f64>::new(0.0);

pub fn init() {
    // Superuser-only: spacing one's commits makes every backend compile in between.
    pgrx::GucRegistry::define_float_guc(
        c"crm.compile_spacing",
        c"A session's catalog commit compiles and publishes the model only once this many times its last compile's duration has passed since it (0: every commit).",
        c"For scripts of many small catalog commits: the commits in between publish no model, and every backend compiles the catalog itself.",
        &SPACING,
        0.0,
        1000.0,
        pgrx::GucContext::Suset,
        pgrx::GucFlags::default(),
    );
}

thread_local! {
    /// When this session's last compile began, and how long it took.
    static LAST: std::cell::Cell<Option<(i64, f64)>> = const { std::cell::Cell::new(None) };
}

/// Whether this session compiled too recently for its commit to compile again (`SPACING`).
fn too_soon(now: i64) -> bool {
    LAST.get().is_some_and(|(at, ms)| ((now - at) as f64 / 1000.0) < SPACING.get() * ms)
}

/// The sub-object number of the compile lock: the lock tag is (pg_namespace, schema crm,
/// COMPILES), which no command of PostgreSQL's takes and users cannot take.
const COMPILES: u16 = u16::MAX - 2;

/// Compile the catalog as this transaction leaves it (its own changes and every committed
/// one), never failing the commit: a catalog that does not compile is published as such.
///
/// Committing catalog changes compile one at a time, under a lock of their own held until
/// they commit: each then compiles beside the rows of the one before, and never again under
/// the commit lock, which every planning waits for (red team of issue 28: eight users sharing
/// their calendars in a loop, each commit compiling again under that lock, held it 72% of the
/// time and made a primary-key read wait up to 965 ms). Planners do not take this lock.
pub fn compile() -> Option<Compiled> {
    if !present() {
        return None;
    }
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    // Within the spacing only a patch is made (it is not a compile; red team of item 2: a
    // patchable commit there published no bytes, and left every backend to compile).
    let spaced = too_soon(now);
    let may_patch = may_patch();
    if spaced && !may_patch {
        return Some(Compiled { at: now, ms: 0.0, seen: Vec::new(), bytes: None, built: Built::Compiled });
    }
    // SAFETY: a syscache lookup of the schema's oid, then a transaction-level lock that waits
    // under the deadlock detector, released when the transaction ends (after its commit is
    // visible, so the next holder's compile sees it). Its holders wait only for the commit
    // lock, whose holders never wait for this one.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        let tag = super::latest::object_lock_tag(pg_sys::NamespaceRelationId, schema, COMPILES);
        pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false);
    }
    // SAFETY: reads the clock; makes this transaction's last command's changes visible to
    // the load below (an autocommitted statement commits without a command boundary).
    let at = unsafe {
        pg_sys::CommandCounterIncrement();
        pg_sys::GetCurrentTimestamp()
    };
    let started = std::time::Instant::now();
    // A patch that fails (it cannot be made, or reading for it failed) is only a compile more.
    // Checked first: most catalog commits change other tables, and need no subtransaction for it.
    let patch = if may_patch { super::spi::with_snapshot(|| super::spi::best_effort(|| patched(at))) } else { Ok(None) };
    if let Err(e) = &patch {
        pgrx::debug1!("crm_access: the published model could not be patched, the catalog is compiled: {e}");
    }
    let compiled = match patch {
        Ok(Some((seen, bytes))) => Ok((seen, bytes, Built::Patched)),
        Ok(None) | Err(_) if spaced => return Some(Compiled { at, ms: 0.0, seen: Vec::new(), bytes: None, built: Built::Compiled }),
        Ok(None) | Err(_) => super::spi::with_snapshot(|| super::spi::best_effort(|| {
            let loaded = load::load()?;
            let model = Model::compile_at(loaded.catalog, at).map_err(|e| CrmError::broken_catalog(e.to_string()))?;
            Ok((loaded.published, published_bytes(model), Built::Compiled))
        })),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Some(match compiled {
        Ok((mut seen, bytes, built)) => {
            // Spacing counts what a compile costs: a patch is not one.
            if built == Built::Compiled {
                LAST.set(Some((at, ms)));
            }
            seen.sort_unstable();
            Compiled { at, ms, seen, bytes: Some(bytes), built }
        }
        Err(_) => {
            LAST.set(Some((at, ms)));
            Compiled { at, ms, seen: Vec::new(), bytes: None, built: Built::Compiled }
        }
    })
}

/// How the published bytes were made (`crm.compiled_model.built`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Built {
    /// The whole catalog loaded and compiled.
    Compiled,
    /// The model published before, with this transaction's change patched in (issue 28, item 2).
    Patched,
}

impl Built {
    fn as_str(self) -> &'static str {
        match self {
            Built::Compiled => "compiled",
            Built::Patched => "patched",
        }
    }
}

/// The model this commit leaves, patched from the published one (issue 28, item 2), when this
/// transaction changed no table the model is compiled from but the users, the sharing
/// defaults, the sharing rules and the group memberships (`Model::patch_users`,
/// `Model::patch_sharing_defaults`, `Model::patch_group_members`, `Model::patch_sharing_rules`:
/// each equals a compile byte for byte). `None` (compile the catalog) otherwise, or when there
/// is no one published model of this library for a moment not after `at`, still right at
/// `at`, the references a restore loaded are not checked yet, or what was read is something a
/// compile refuses (it reports it, with the reason). Read under the latest snapshot, as
/// `load::load` reads the catalog: the published row then reflects every catalog commit
/// visible in it, the tables read are as the compile would read them, and a commit landing
/// before this one takes the commit lock makes `write` publish no bytes, as for a compile.
fn patched(at: i64) -> CrmResult<Option<(Vec<i64>, Vec<u8>)>> {
    let tables = super::commits::changed_tables();
    let changed = |name: &std::ffi::CStr| tables.contains(&crm_relid(name));
    // Each table this transaction changed, read whole with the load's own SQL.
    // Of the users, only those this transaction changed when it knows them all: re-reading
    // 20,000 users was most of a user patch's commit (docs/benchmarks.md).
    let changed_users = if changed(c"users") { super::commits::changed_keys(super::commits::Keyed::Users) } else { None };
    let users_sql = match &changed_users {
        Some(ids) => (format!("SELECT ({})::text", load::users_json_of(ids)), format!("the {} users it changed", ids.len())),
        None => (format!("SELECT ({})::text", load::USERS_JSON), "every user (not every change to them was handed over)".into()),
    };
    // Of the memberships, only those of the groups whose members this transaction changed,
    // when it knows them all: reading every membership was most of a member's patch beyond
    // a default's.
    let changed_groups = if changed(c"group_members") { super::commits::changed_keys(super::commits::Keyed::GroupMembers) } else { None };
    let members_sql = match &changed_groups {
        Some(ids) => (format!("SELECT ({})::text", load::group_members_json_of(ids)), format!("the members of the {} groups whose members it changed", ids.len())),
        None => (format!("SELECT ({})::text", load::GROUP_MEMBERS_JSON), "every group's members (not every change to them was handed over)".into()),
    };
    // A read by key only while the triggers that name the keys are as installed.
    let intact = |keys: bool, table: &std::ffi::CStr| !keys || keyed_triggers_intact(table);
    if !(intact(changed_users.is_some(), c"users") && intact(changed_groups.is_some(), c"group_members")) {
        pgrx::debug1!("crm_access: the commit compiles: a trigger of the catalog is not as installed");
        return Ok(None);
    }
    // Each with what the commit says it reads (debug1), for the keyed tables.
    let reads = [
        (changed(c"users"), users_sql.0, Some(users_sql.1)),
        (changed(c"sharing_defaults"), SHARING_DEFAULTS.to_string(), None),
        (changed(c"group_members"), members_sql.0, Some(members_sql.1)),
        (changed(c"sharing_rules"), format!("SELECT ({})::text", load::SHARING_RULES_JSON), None),
    ];
    let query = |sql: &str| -> CrmResult<Option<String>> {
        let sql = std::ffi::CString::new(sql).expect("no NUL in the query");
        privileged::as_catalog_role(|| Ok(privileged::query_one(&sql)))
    };
    // SAFETY: the snapshot pushed is popped before returning, on success and on error alike
    // (an error aborts the (sub)transaction, which pops active snapshots itself).
    let read = unsafe {
        pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
        let read = (|| -> CrmResult<Option<(Vec<Row>, Vec<Option<String>>)>> {
            if super::restore::problems()?.is_some() {
                return Ok(None);
            }
            let mut json = Vec::with_capacity(reads.len());
            for (changed, sql, reads) in &reads {
                if let (true, Some(reads)) = (changed, reads) {
                    pgrx::debug1!("crm_access: the commit reads {reads}");
                }
                json.push(if *changed { query(sql)? } else { None });
            }
            Ok(Some((rows()?, json)))
        })();
        pg_sys::PopActiveSnapshot();
        read?
    };
    let Some((rows, json)) = read else { return Ok(None) };
    let Ok([(id, compiled_at, Some(mut model), Some(_), Some(library))]) = <[Row; 1]>::try_from(rows) else { return Ok(None) };
    if compiled_at > at || library != LIBRARY || model.valid_until().is_some_and(|until| until <= at) {
        return Ok(None);
    }
    let [users, levels, members, rules] = <[Option<String>; 4]>::try_from(json).expect("one read per table");
    // What does not read as the load would read it: the compile reports it, with the reason.
    let Some(users) = parse::<Vec<crm_model::User>>(users) else { return Ok(None) };
    let Some(levels) = parse::<BTreeMap<String, String>>(levels) else { return Ok(None) };
    let levels: Option<BTreeMap<String, crm_model::SharingLevel>> = match levels {
        None => None,
        Some(levels) => match levels.into_iter().map(|(m, l)| l.parse().ok().map(|l| (m, l))).collect() {
            Some(levels) => Some(levels),
            None => return Ok(None),
        },
    };
    let Some(members) = parse::<Vec<crm_model::GroupMember>>(members) else { return Ok(None) };
    let Some(rules) = parse::<Vec<crm_model::SharingRule>>(rules) else { return Ok(None) };
    // Users first: memberships and new rules look them up. Memberships before rules: a new
    // rule naming a group looks its members up.
    if let Some(users) = users {
        let patched = match &changed_users {
            Some(ids) => model.patch_changed_users(ids, users),
            None => model.patch_users(users),
        };
        if patched.is_err() {
            return Ok(None);
        }
    }
    if let Some(levels) = levels {
        model.patch_sharing_defaults(&levels);
    }
    if let Some(members) = members {
        match &changed_groups {
            Some(groups) => model.patch_changed_members(groups, members),
            None => model.patch_group_members(members),
        }
    }
    if let Some(rules) = rules {
        model.patch_sharing_rules(rules);
    }
    Ok(Some((vec![id], published_bytes(model))))
}

/// Whether the triggers a read by key relies on are as installed on crm table `table` (its
/// four audit triggers and its catalog trigger: the function each calls, its events and
/// timing, its transition tables, enabled always, no condition, columns or arguments), read
/// from the relation's cache entry. This transaction wrote the table, so it holds a lock that
/// no trigger DDL gets past until it ends, and the entry is current.
///
/// Turning a trigger off or on, or creating one, is DDL that has its own commit compile
/// (`commits::altered`), but the state outlasts it, and no event trigger fires for `DROP
/// TRIGGER`: a member of the catalog role dropped the audit trigger, or disabled it in an
/// earlier transaction, changed rows it did not hand over, and balanced the statement counts
/// with a `crm.audit_note` of its own, so that a patch left the change out (red team of the
/// memberships read by key; the same held for users since 056cbed). Not as installed: the
/// commit compiles. (A catalog query of the same was 0.6 ms of every such commit.)
fn keyed_triggers_intact(table: &std::ffi::CStr) -> bool {
    const EXPECTED: [(&str, &str, u32, Option<&str>, Option<&str>); 5] = [
        ("audit_insert", "audit_statement", pg_sys::TRIGGER_TYPE_INSERT, None, Some("new_rows")),
        ("audit_update", "audit_statement", pg_sys::TRIGGER_TYPE_UPDATE, Some("old_rows"), Some("new_rows")),
        ("audit_delete", "audit_statement", pg_sys::TRIGGER_TYPE_DELETE, Some("old_rows"), None),
        ("audit_truncate", "audit_statement", pg_sys::TRIGGER_TYPE_BEFORE | pg_sys::TRIGGER_TYPE_TRUNCATE, None, None),
        (
            "catalog_changed",
            "catalog_changed",
            pg_sys::TRIGGER_TYPE_INSERT | pg_sys::TRIGGER_TYPE_DELETE | pg_sys::TRIGGER_TYPE_UPDATE | pg_sys::TRIGGER_TYPE_TRUNCATE,
            None,
            None,
        ),
    ];
    let relid = crm_relid(table);
    if relid == pg_sys::InvalidOid {
        return false;
    }
    // SAFETY: syscache and relcache lookups; the relation is closed again before returning,
    // and the trigger descriptor is read only while it is open.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        let text = |p: *const std::ffi::c_char| (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned());
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return false;
        }
        let desc = (*rel).trigdesc;
        let triggers = if desc.is_null() { &[][..] } else { std::slice::from_raw_parts((*desc).triggers, (*desc).numtriggers as usize) };
        let found = EXPECTED
            .iter()
            .filter(|(name, function, kind, old, new)| {
                triggers.iter().any(|t| {
                    text(t.tgname).as_deref() == Some(*name)
                        && t.tgenabled as u8 == pg_sys::TRIGGER_FIRES_ALWAYS
                        && !t.tgisinternal
                        && t.tgconstraint == pg_sys::InvalidOid
                        && t.tgtype as u32 == *kind
                        && t.tgnargs == 0
                        && t.tgnattr == 0
                        && t.tgqual.is_null()
                        && text(t.tgoldtable).as_deref() == *old
                        && text(t.tgnewtable).as_deref() == *new
                        && pg_sys::get_func_namespace(t.tgfoid) == schema
                        && pg_sys::get_func_nargs(t.tgfoid) == 0
                        && text(pg_sys::get_func_name(t.tgfoid)).as_deref() == Some(*function)
                })
            })
            .count();
        pg_sys::RelationClose(rel);
        found == EXPECTED.len()
    }
}

/// A table read for a patch: `Some(None)` when it was not read, `None` when what was read
/// does not parse as the load would parse it.
fn parse<T: serde::de::DeserializeOwned>(json: Option<String>) -> Option<Option<T>> {
    match json {
        None => Some(None),
        Some(json) => serde_json::from_str(&json).ok().map(Some),
    }
}

/// The bytes to publish: without the bindings to database roles, which every reader reads
/// afresh (`read`), and which change without a catalog write (a role renamed), so that a
/// patch carrying them forward from an older compile would not leave a compile's bytes.
fn published_bytes(mut model: Model) -> Vec<u8> {
    model.set_role_bindings(BTreeMap::new(), Vec::new());
    model.to_bytes()
}

/// Whether this transaction changed no table the model is compiled from but those a patch
/// covers (`patched`).
fn may_patch() -> bool {
    let tables = super::commits::changed_tables();
    let patchable: Vec<pg_sys::Oid> =
        [c"users", c"sharing_defaults", c"group_members", c"sharing_rules"].into_iter().map(crm_relid).collect();
    let patchable = |t: &pg_sys::Oid| *t != pg_sys::InvalidOid && patchable.contains(t);
    !tables.is_empty() && tables.iter().all(patchable) && !super::commits::altered_here() && super::compat::modules_are_data()
}

const SHARING_DEFAULTS: &str = "SELECT coalesce(json_object_agg(module, level), '{}')::text FROM crm.sharing_defaults";

fn has_built_column() -> bool {
    let table = crm_relid(c"compiled_model");
    // SAFETY: a syscache lookup by relation and name.
    table != pg_sys::InvalidOid && unsafe { pg_sys::get_attnum(table, c"built".as_ptr()) } != pg_sys::InvalidAttrNumber as i16
}

/// The oid of crm's table `name`, if there is one.
fn crm_relid(name: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups by name.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::get_relname_relid(name.as_ptr(), schema)
    }
}

/// Under the exclusive commit lock: replace the rows the compile saw with its bytes. Rows it did
/// not see (a prepared transaction's, committed since) mean the bytes may miss a change: then a
/// row without bytes replaces them all, and every backend compiles until the next catalog commit.
pub fn write(compiled: Compiled) -> CrmResult<()> {
    let mut visible = ids()?;
    visible.sort_unstable();
    let bytes = compiled.bytes.filter(|_| compiled.seen == visible);
    let built = bytes.is_some().then_some(compiled.built);
    replace(&visible, compiled.at, bytes.as_deref(), compiled.ms, built)
}

/// Whether what is published is not one model (no row, a prepared transaction's row without
/// bytes beside it): a COMMIT PREPARED then publishes again (`commits::committed_prepared`).
pub fn stale() -> bool {
    if !present() {
        return false;
    }
    let sql = "SELECT NULL::text, CASE WHEN count(*) = 1 AND count(bytes) = 1 THEN 0 ELSE 1 END::int8 FROM crm.compiled_model";
    let stale = super::spi::with_snapshot(|| privileged::as_catalog_role(|| super::latest::text_and_ids(sql)));
    // Unreadable: publishing again is what a reader would want anyway.
    stale.map_or(true, |(_, ids)| ids.first().copied().flatten() != Some(0))
}

/// At PREPARE TRANSACTION of a catalog change: a row without bytes, which readers see once
/// the transaction commits, if it does.
pub fn prepared() -> CrmResult<()> {
    if !present() {
        return Ok(());
    }
    // SAFETY: reads the clock.
    super::spi::with_snapshot(|| replace(&[], unsafe { pg_sys::GetCurrentTimestamp() }, None, 0.0, None))
}

/// The ids of the rows visible now, as the catalog role.
fn ids() -> CrmResult<Vec<i64>> {
    let (_, ids) = privileged::as_catalog_role(|| super::latest::text_and_ids("SELECT NULL::text, id FROM crm.compiled_model"))?;
    Ok(ids.into_iter().flatten().collect())
}

/// Delete rows `gone` and add one, as the catalog role, under the latest snapshot (a
/// repeatable-read transaction must not fail on the rows of commits after its start).
fn replace(gone: &[i64], at: i64, bytes: Option<&[u8]>, ms: f64, built: Option<Built>) -> CrmResult<()> {
    privileged::as_catalog_role(|| {
        if !gone.is_empty() {
            let ids = gone.to_vec().into_datum().expect("an array datum");
            super::latest::execute("DELETE FROM crm.compiled_model WHERE id OPERATOR(pg_catalog.=) ANY ($1)", &[(pg_sys::INT8ARRAYOID, ids, false)], false)?;
        }
        let bytes = bytes.and_then(|b| b.into_datum());
        // A database installed by a pre-release 0.4.0 has no `built` column (red team of
        // issue 28, item 2: every catalog commit failed there).
        let insert = if has_built_column() {
            "INSERT INTO crm.compiled_model (compiled_at, bytes, compile_ms, library, built) VALUES ($1, $2, $3, $4, $5)"
        } else {
            "INSERT INTO crm.compiled_model (compiled_at, bytes, compile_ms, library) VALUES ($1, $2, $3, $4)"
        };
        super::latest::execute(
            insert,
            &[
                (pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(at), false),
                (pg_sys::BYTEAOID, bytes.unwrap_or(pg_sys::Datum::from(0)), bytes.is_none()),
                (pg_sys::FLOAT8OID, ms.into_datum().expect("a float8 datum"), false),
                (pg_sys::TEXTOID, LIBRARY.into_datum().expect("a text datum"), false),
                (pg_sys::TEXTOID, built.and_then(|b| b.as_str().into_datum()).unwrap_or(pg_sys::Datum::from(0)), built.is_none()),
            ],
            false,
        )?;
        Ok(())
    })
}

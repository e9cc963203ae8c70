//! Loading the catalog snapshot from the crm.* tables.
//!
//! One read-only query returns the whole catalog as a JSON document: one round trip, one
//! snapshot, and no per-table decoding code. The query runs `read_only` under a snapshot
//! taken *after* invalidation messages were accepted (see `session::cache`), so it sees
//! every change whose invalidation we consumed, and it never writes (hot standby safe).

use std::collections::HashSet;
use std::ffi::CStr;

use crm_model::Catalog;
use pgrx::pg_sys;
use serde::Deserialize;

use super::privileged::{self, query_one};
use crate::error::{CrmError, CrmResult};

/// The catalog plus what the extension needs to build and check policy expressions.
#[derive(Debug, Deserialize)]
pub struct LoadedCatalog {
    pub catalog: Catalog,
    /// Relations whose invalidation means "the catalog changed": those crm.catalog_tables
    /// says the model is compiled from (sql/triggers.sql gives each its trigger).
    pub catalog_relids: HashSet<u32>,
    /// `crm.assert_can_assign(regclass, text, bigint)`, the fallback of write checks.
    pub assert_fn: u32,
    /// Child table -> its link to the parent table (crm.parent_links).
    pub parent_links: std::collections::HashMap<u32, ParentLink>,
    /// The rows of `crm.compiled_model` this catalog was read beside (`publish`).
    #[serde(default)]
    pub published: Vec<i64>,
}

/// A child table's link: the parent table, and the child's column holding the parent's key.
#[derive(Debug, Clone, Deserialize)]
pub struct ParentLink {
    pub parent: u32,
    pub column: String,
}

const EXTENSION_OWNER: &CStr = c"SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'crm_access'";

const CATALOG_JSON: &str = "
SELECT json_build_object('catalog', json_build_object(
  'roles', coalesce((SELECT json_agg(json_build_object('id', id, 'name', name, 'parent', parent_id)) FROM crm.roles), '[]'),
  'profiles', coalesce((SELECT json_agg(json_build_object(
        'id', p.id, 'name', p.name, 'view_all', p.view_all, 'edit_all', p.edit_all, 'message_permissions', p.message_permissions,
        'fields', coalesce((SELECT json_object_agg(f.module, f.fields)
                            FROM (SELECT module, json_object_agg(field, access) AS fields FROM crm.field_access
                                  WHERE profile_id = p.id GROUP BY module) f), '{}'),
        'grants', coalesce((SELECT json_object_agg(g.module, g.actions)
                            FROM (SELECT module, json_agg(action) AS actions FROM crm.profile_privileges
                                  WHERE profile_id = p.id GROUP BY module) g), '{}')))
     FROM crm.profiles p), '[]'),
  'role_profiles', coalesce((SELECT json_agg(json_build_array(role_id, profile_id)) FROM crm.role_profiles), '[]'),
  'users', {users},
{modules}
  'protected_tables', coalesce((SELECT json_object_agg(tbl::oid, json_build_array(module, owner_column))
                                FROM crm.protected_tables), '{}'),
  'db_role_map', coalesce((SELECT json_object_agg(m.db_role_oid, m.user_id) FROM crm.db_role_map m
                           JOIN pg_roles r ON r.oid = m.db_role_oid AND r.rolname = m.db_role), '{}'),
  'trusted_roles', coalesce((SELECT json_agg(t.db_role_oid::int8) FROM crm.trusted_roles t
                             JOIN pg_roles r ON r.oid = t.db_role_oid AND r.rolname = t.db_role), '[]'),
  'groups', coalesce((SELECT json_agg(json_build_object('owner_id', g.owner_id, 'name', o.name))
                      FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id), '[]'),
  'group_members', {group_members},
  'sharing_rules', {sharing_rules},
  'permission_sets', coalesce((SELECT json_agg(json_build_object(
        'id', s.id, 'name', s.name, 'view_all', s.view_all, 'edit_all', s.edit_all, 'message_permissions', s.message_permissions,
        'grants', coalesce((SELECT json_object_agg(g.module, g.actions)
                            FROM (SELECT module, json_agg(action) AS actions FROM crm.permission_set_privileges
                                  WHERE set_id = s.id GROUP BY module) g), '{}')))
     FROM crm.permission_sets s), '[]'),
  'hidden_fields', coalesce((SELECT json_agg(json_build_array(module, field)) FROM crm.hidden_fields), '[]'),
  'calendar_shares', coalesce((SELECT json_agg(json_build_array(owner_id, with_user)) FROM crm.calendar_shares), '[]')),
{published}
  'parent_links', coalesce((SELECT json_object_agg(child::oid, json_build_object('parent', parent::oid::int8, 'column', parent_column))
                            FROM crm.parent_links), '{}'),
  'catalog_relids', coalesce((SELECT json_agg(tbl::oid::int8) FROM crm.catalog_tables WHERE compiled), '[]'),
  'assert_fn', 'crm.assert_can_assign(regclass, text, bigint)'::regprocedure::oid::int8
)::text";

/// The sharing rules as the load reads them, in its order: also read alone by a commit that
/// patches them into the published model (`publish`). Ordered, as the modules are: a patch
/// leaves the bytes a compile makes only if the compile's order does not hang on a join's plan
/// (the modules' did, on how many defaults have a row).
pub const SHARING_RULES_JSON: &str = "coalesce((SELECT json_agg(json_build_object('id', id, 'module', module, 'access', access,
                                'related_modules', related_modules,
                                'source', json_build_object('kind', source_kind, 'id', source_id),
                                'target', json_build_object('kind', target_kind, 'id', target_id)) ORDER BY id)
                             FROM crm.sharing_rules), '[]')";

/// The users as the load reads them: also read alone by a commit that patches them into the
/// published model (`publish`). Arrays in the fields' order (serde reads a struct from
/// either): building an object per user was most of the query's time with thousands of users.
pub const USERS_JSON: &str = "coalesce((SELECT json_agg(json_build_array(u.owner_id, o.name, u.role_id, u.is_admin, u.is_active))
                     FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id), '[]')";

/// `USERS_JSON` for the users `ids` alone (a commit that knows which users it changed,
/// `publish`). The ids are integers this library formats, never text from a caller.
pub fn users_json_of(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let sql = USERS_JSON.replace("ON o.id = u.owner_id)", &format!("ON o.id = u.owner_id WHERE u.owner_id = ANY ('{{{}}}'::int8[]))", list.join(",")));
    // Were the filter lost, every user would be read: slower, and still right.
    debug_assert_ne!(sql, USERS_JSON, "the users' query names its join as users_json_of expects");
    sql
}

/// The group memberships as the load reads them: also read alone by a commit that patches
/// them into the published model (`publish`). Arrays in the fields' order, as `USERS_JSON`:
/// objects took twice as long (2.1 against 1.0 ms for 1,200 memberships, 12.6 against 6.0
/// for 7,600), most of a member's patch at 20,000 users beyond a default's.
pub const GROUP_MEMBERS_JSON: &str = "coalesce((SELECT json_agg(json_build_array(group_id, json_build_array(member_kind, member_id)))
                             FROM crm.group_members), '[]')";

/// `GROUP_MEMBERS_JSON` for the groups `ids` alone (a commit that knows which groups'
/// members it changed, `publish`). The ids are integers this library formats, never text
/// from a caller.
pub fn group_members_json_of(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let sql = GROUP_MEMBERS_JSON.replace("FROM crm.group_members)", &format!("FROM crm.group_members WHERE group_id = ANY ('{{{}}}'::int8[]))", list.join(",")));
    // Were the filter lost, every membership would be read: slower, and still right.
    debug_assert_ne!(sql, GROUP_MEMBERS_JSON, "the memberships' query names its table as group_members_json_of expects");
    sql
}

/// The shared model's rows (`publish::read`), each with what a model read from them is
/// completed with: what is bound to database roles and relations, which change without a
/// catalog write, and what the extension needs beside the model. One statement, one snapshot.
pub const PUBLISHED_JSON: &CStr = c"
SELECT m.id, m.compiled_at, m.bytes, json_build_object(
  'db_role_map', coalesce((SELECT json_object_agg(m.db_role_oid, m.user_id) FROM crm.db_role_map m
                           JOIN pg_roles r ON r.oid = m.db_role_oid AND r.rolname = m.db_role), '{}'),
  'trusted_roles', coalesce((SELECT json_agg(t.db_role_oid::int8) FROM crm.trusted_roles t
                             JOIN pg_roles r ON r.oid = t.db_role_oid AND r.rolname = t.db_role), '[]'),
  'protected_tables', coalesce((SELECT json_agg(tbl::oid::int8) FROM crm.protected_tables), '[]'),
  'parent_links', coalesce((SELECT json_object_agg(child::oid, json_build_object('parent', parent::oid::int8, 'column', parent_column))
                            FROM crm.parent_links), '{}'),
  'catalog_relids', coalesce((SELECT json_agg(tbl::oid::int8) FROM crm.catalog_tables WHERE compiled), '[]'),
  'assert_fn', 'crm.assert_can_assign(regclass, text, bigint)'::regprocedure::oid::int8
)::text, m.library
FROM crm.compiled_model m";

/// The modules' part of `CATALOG_JSON` (with restriction rules and the ends of permission-set assignments): as data from 0.4.0; before (a library serving an
/// older schema during `ALTER EXTENSION crm_access UPDATE`), the names alone, completed from
/// `compat`.
const MODULES_AS_DATA: &str = "'modules', (SELECT json_agg(json_build_object('name', m.name, 'sharing_default', coalesce(d.level, 'private'),
                                                'controlled_by', m.controlled_by, 'holds', m.holds,
                                                'links_conversations', m.links_conversations) ORDER BY m.name)
              FROM crm.modules m LEFT JOIN crm.sharing_defaults d ON d.module = m.name),
  'module_relations', coalesce((SELECT json_agg(json_build_array(parent, child)) FROM crm.module_relations), '[]'),
  'restriction_rules', coalesce((SELECT json_agg(json_build_object('id', id, 'module', module,
                                    'applies_to', json_build_object('kind', kind, 'id', target_id),
                                    'column', column_name, 'allowed', allowed))
                                 FROM crm.restrictions), '[]'),
  -- (set, owner, until), until in PostgreSQL's own microseconds since 2000-01-01 UTC.
  'permission_set_assignments', coalesce((SELECT json_agg(json_build_array(set_id, owner_id,
                                    ((extract(epoch FROM until) - 946684800) * 1000000)::int8))
                                          FROM crm.permission_set_assignments), '[]'),";
/// The rows of the shared model beside the catalog, from 0.4.0 (`publish`).
const PUBLISHED: &str = "  'published', coalesce((SELECT json_agg(id) FROM crm.compiled_model), '[]'),";
const MODULES_BEFORE_0_4: &str = "'modules', (SELECT json_agg(json_build_object('name', m.name, 'sharing_default', coalesce(d.level, 'private')))
              FROM crm.modules m LEFT JOIN crm.sharing_defaults d ON d.module = m.name),
  'permission_set_assignments', coalesce((SELECT json_agg(json_build_array(set_id, owner_id, NULL))
                                          FROM crm.permission_set_assignments), '[]'),";

thread_local! {
    /// `CATALOG_JSON` for each kind of schema, built once.
    static QUERIES: [std::ffi::CString; 2] = [(MODULES_AS_DATA, PUBLISHED), (MODULES_BEFORE_0_4, "")]
        .map(|(modules, published)| {
            let query = CATALOG_JSON.replace("{modules}", modules).replace("{published}", published).replace("{sharing_rules}", SHARING_RULES_JSON).replace("{group_members}", GROUP_MEMBERS_JSON).replace("{users}", USERS_JSON);
            std::ffi::CString::new(query).expect("no NUL in the query")
        });
}

/// The role that installed the extension, which may administer the catalog (DESIGN §5).
pub fn extension_owner() -> CrmResult<pg_sys::Oid> {
    let owner = privileged::as_invoker(|| query_one(EXTENSION_OWNER));
    owner
        .and_then(|o| o.parse::<u32>().ok())
        .map(pg_sys::Oid::from)
        .ok_or_else(|| CrmError::broken_catalog("the crm_access extension is not installed in this database"))
}

/// Load the catalog under a fresh snapshot, so that it includes every committed change
/// whose invalidation was accepted before this call, and this transaction's own changes.
pub fn load() -> CrmResult<LoadedCatalog> {
    // Policies are specialised while planning, which loads the model outside parallel mode;
    // only a direct call of crm.can() inside a parallel query could get here, and there
    // neither a fresh snapshot nor a pinned search_path can be had. Refuse, never guess.
    // SAFETY: reads a flag of the current transaction.
    if unsafe { pg_sys::IsInParallelMode() } {
        return Err(CrmError::not_supported("the CRM catalog cannot be loaded during a parallel operation")
            .with_hint("Call crm.can() outside parallel queries, or SET max_parallel_workers_per_gather = 0."));
    }
    // SAFETY: the snapshot pushed is popped before returning, on success and on error alike
    // (an error aborts the transaction, which pops active snapshots itself).
    let as_data = super::compat::modules_are_data();
    let json = unsafe {
        pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
        let json = privileged::as_catalog_role(|| Ok(QUERIES.with(|q| query_one(&q[usize::from(!as_data)]))));
        // Under the same snapshot: after a load that waited for its keys, the references
        // are checked before the model is used (`restore`).
        let problems = json.is_ok().then(super::restore::problems);
        pg_sys::PopActiveSnapshot();
        if let Some(problems) = problems.transpose()?.flatten() {
            return Err(super::restore::incomplete(problems));
        }
        json?
    };
    let json = json.ok_or_else(|| CrmError::broken_catalog("the catalog query returned nothing"))?;
    let mut loaded: LoadedCatalog = serde_json::from_str(&json).map_err(|e| CrmError::broken_catalog(format!("cannot read the catalog: {e}")))?;
    if !as_data {
        super::compat::complete(&mut loaded.catalog);
    }
    Ok(loaded)
}

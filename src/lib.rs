//! crm_access: a vtiger-style CRM record-permission model enforced by row-level security.
//! Layers (DESIGN §2, docs/architecture.md): `crm_model` (pure engine), `catalog` (loading,
//! SPI, facts about tables), `session` (identity, cache, plan invalidation), `enforce` (what
//! policies and triggers call at run time), `planner` (the policies' plan-time
//! specialisation), `policy` (the DDL `crm.protect` runs), `api` (the SQL API).

use pgrx::prelude::*;

mod api;
mod catalog;
mod enforce;
mod error;
mod planner;
mod policy;
mod session;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!("../sql/triggers.sql", name = "triggers", requires = [api::trigger::catalog_changed, api::trigger::compile_at_commit]);
extension_sql_file!(
    "../sql/calendar.sql",
    name = "calendar",
    requires = ["catalog", policy::protect::installed, enforce::calendar::can_see_event, enforce::calendar::knows_events, api::identity::acting_owner_id]
);
extension_sql_file!(
    "../sql/messages.sql",
    name = "messages",
    requires = [
        "catalog",
        policy::protect::installed,
        enforce::conversations::can_converse,
        api::identity::acting_owner_id,
        api::identity::acting_owner_ids,
        enforce::linked::linked_record_owner,
        enforce::linked::copy_conversation_visibility,
        enforce::linked::date_conversations
    ]
);
extension_sql_file!("../sql/operations.sql", name = "operations", requires = ["catalog", "calendar", "messages", "audit"]);
extension_sql_file!("../sql/guard.sql", name = "guard", requires = ["catalog", "messages", enforce::shares::shares_follow_record, enforce::opened::protection_changing, enforce::opened::current_role_may_run_ddl, enforce::linked::forget_missing_relations]);
extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = ["catalog", "triggers", api::audit::audit_note, api::audit::audit_wanted, api::audit::audit_log_append_only, api::audit::reads_audit_log, api::audit::prune_audit_log]
);
extension_sql_file!("../sql/shares.sql", name = "shares", requires = ["catalog", "triggers", "audit", api::shares::share_visible]);
extension_sql_file!("../sql/published.sql", name = "published", requires = ["catalog"]);
extension_sql_file!("../sql/ownership.sql", name = "ownership", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    session::init();
    enforce::instrumented::init();
    planner::statistics::init();
}

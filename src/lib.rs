//! crm_access: a vtiger-style CRM record-permission model enforced by row-level security.
//! Layers (DESIGN §2): `crm_model` (pure engine), `catalog` (loading), `session` (identity
//! and cache), `api` (SQL functions), `policy` (protect, enforcement, plan-time simplification).

use pgrx::prelude::*;

mod api;
mod catalog;
mod error;
mod policy;
mod session;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!("../sql/triggers.sql", name = "triggers", requires = [api::trigger::catalog_changed]);
extension_sql_file!(
    "../sql/calendar.sql",
    name = "calendar",
    requires = ["catalog", policy::calendar::can_see_event, policy::calendar::knows_events, policy::conversations::acting_owner_id]
);
extension_sql_file!(
    "../sql/messages.sql",
    name = "messages",
    requires = [
        "catalog",
        policy::conversations::can_converse,
        policy::conversations::acting_owner_id,
        policy::conversations::acting_owner_ids,
        policy::linked::linked_record_owner,
        policy::linked::copy_conversation_visibility,
        policy::linked::date_conversations
    ]
);
extension_sql_file!("../sql/guard.sql", name = "guard", requires = ["catalog", "messages", policy::opened::protection_changing, policy::linked::forget_missing_relations]);
extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = ["catalog", "triggers", api::audit::audit_note, api::audit::audit_log_append_only, api::audit::reads_audit_log, api::audit::prune_audit_log]
);
extension_sql_file!("../sql/ownership.sql", name = "ownership", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    session::init();
}

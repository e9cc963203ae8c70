//! The triggers crm_access puts on protected tables, by name. `crm.protection_problems()`
//! (sql/guard.sql) looks for the same names: a protected table without them, or with one
//! disabled, is a weakened protection.

pub const FIELD_CHECK: &str = "crm_field_check";
pub const FIELD_CHECK_INSERT: &str = "crm_field_check_insert";
pub const TRUNCATE_CHECK: &str = "crm_truncate_check";
pub const LINKED_OWNER_UPDATE: &str = "crm_linked_owner_update";
pub const LINKED_OWNER_DELETE: &str = "crm_linked_owner_delete";
pub const KEEP_PARENT_OWNER: &str = "crm_keep_parent_owner";
pub const PUSH_PARENT_OWNER: &str = "crm_push_parent_owner";
pub const PUSH_PARENT_OWNER_DELETE: &str = "crm_push_parent_owner_delete";

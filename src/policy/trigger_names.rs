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
pub const SHARES_FOLLOW_UPDATE: &str = "crm_shares_follow_update";
pub const SHARES_FOLLOW_DELETE: &str = "crm_shares_follow_delete";

/// The DDL of a pair of statement triggers that push a change of owner to its copies: AFTER
/// UPDATE and AFTER DELETE, over transition tables named crm_old and crm_new, the only names
/// `rows::require_firing` lets such a trigger run with.
pub fn push_triggers(table: &str, on_update: &str, on_delete: &str, function: &str) -> String {
    format!(
        "CREATE OR REPLACE TRIGGER {on_update} AFTER UPDATE ON {table}
             REFERENCING OLD TABLE AS crm_old NEW TABLE AS crm_new FOR EACH STATEMENT EXECUTE FUNCTION {function}();
         CREATE OR REPLACE TRIGGER {on_delete} AFTER DELETE ON {table}
             REFERENCING OLD TABLE AS crm_old FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
    )
}

//! The standard modules' roles and relations as crm_access 0.3.0 and earlier had them in
//! code, for a library serving an older schema: between installing this build and `ALTER
//! EXTENSION crm_access UPDATE`, and while the update runs the older releases' scripts (which
//! call `crm.protect`). From 0.4.0 they are rows of `crm.modules` and `crm.module_relations`
//! (sql/catalog.sql), and this is the one place in code that names modules
//! (model/tests/module_names.rs).

use pgrx::pg_sys;

/// (module, controlled by).
const CONTROLLED: [(&str, &str); 1] = [("Contacts", "Accounts")];
/// (module, the record table kind its actions govern).
const HOLDS: [(&str, &str); 2] = [("Messages", "conversations"), ("Activities", "events")];
const LINKS_CONVERSATIONS: [&str; 2] = ["Leads", "Contacts"];
/// (parent, child): Accounts' related modules as rules saw them, and PurchaseOrders, which a
/// private Accounts default made private too.
const RELATIONS: [(&str, &str); 10] = [
    ("Accounts", "Opportunities"),
    ("Accounts", "Tickets"),
    ("Accounts", "Quotes"),
    ("Accounts", "SalesOrders"),
    ("Accounts", "PurchaseOrders"),
    ("Accounts", "Invoices"),
    ("Opportunities", "Quotes"),
    ("Opportunities", "SalesOrders"),
    ("Quotes", "SalesOrders"),
    ("SalesOrders", "Invoices"),
];

/// Whether this database's schema keeps modules as data (0.4.0 and later).
pub fn modules_are_data() -> bool {
    // SAFETY: syscache lookups by name.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return false;
        }
        let relations = pg_sys::get_relname_relid(c"module_relations".as_ptr(), schema);
        relations != pg_sys::InvalidOid
    }
}

/// What an older schema's standard module `name` was: (controlled by, holds, links conversations).
pub fn facts(name: &str) -> (Option<String>, Option<String>, bool) {
    (
        CONTROLLED.iter().find(|(m, _)| *m == name).map(|(_, p)| p.to_string()),
        HOLDS.iter().find(|(m, _)| *m == name).map(|(_, h)| h.to_string()),
        LINKS_CONVERSATIONS.contains(&name),
    )
}

/// An older schema's relations.
pub fn relations() -> Vec<(String, String)> {
    RELATIONS.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

/// Give a catalog loaded from an older schema the roles and relations it had in code.
pub fn complete(catalog: &mut crm_model::Catalog) {
    for m in &mut catalog.modules {
        let (controlled_by, holds, links) = facts(&m.name);
        m.controlled_by = controlled_by;
        m.holds = holds.map(|h| if h == "conversations" { crm_model::Holds::Conversations } else { crm_model::Holds::Events });
        m.links_conversations = links;
    }
    catalog.module_relations = relations();
}

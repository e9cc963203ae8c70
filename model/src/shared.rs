//! The compiled model as bytes, so that one compile serves every backend: the extension
//! keeps them in `crm.compiled_model` (see its `session::cache`). Postcard encodes the model's
//! own types, prefixed by a format tag; bytes of any other format are refused, never guessed.

use std::collections::BTreeMap;

use crate::{Model, OwnerId};

/// Names the byte layout of `Model` and every type inside it. Bump the number whenever one
/// of them changes shape; `tests/shared.rs` pins a digest of a small model's bytes and fails
/// until both are updated, so that a library never reads bytes another build wrote.
const FORMAT: &[u8] = b"crm_model/10\0";

impl Model {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail.
        postcard::to_extend(self, FORMAT.to_vec()).expect("the model encodes")
    }

    /// The model, if `bytes` are a whole model of this format.
    pub fn from_bytes(bytes: &[u8]) -> Option<Model> {
        let body = bytes.strip_prefix(FORMAT)?;
        match postcard::take_from_bytes::<Model>(body) {
            // A compile refuses a user of a role the tree lacks (red team of 501bb0a).
            Ok((model, [])) if model.users.roles().all(|r| model.tree.contains(r)) => Some(model),
            _ => None,
        }
    }

    /// Replace which login roles map to which users and which roles are trusted. These are
    /// bound by role oid and role name, which change without any catalog write (a role
    /// renamed, dropped, re-created), so a model read from bytes takes them from the
    /// current database roles.
    pub fn set_role_bindings(&mut self, db_role_map: BTreeMap<u32, OwnerId>, trusted_roles: Vec<u32>) {
        self.catalog.db_role_map = db_role_map;
        self.catalog.trusted_roles = trusted_roles;
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, Role, User};
    use crate::users::Users;
    use crate::Model;

    /// A compile refuses a user of a role the tree lacks; bytes holding one are no model.
    #[test]
    fn a_user_of_a_role_the_tree_lacks_is_no_model() {
        let user = |id, role| User { owner_id: id, name: format!("u{id}").into(), role, is_admin: false, is_active: true };
        let catalog = Catalog { roles: vec![Role { id: 1, name: "R".into(), parent: None }], users: vec![user(10, 1)], ..Default::default() };
        let mut m = Model::compile(catalog).unwrap();
        assert!(Model::from_bytes(&m.to_bytes()).is_some());
        m.users = Users::new(vec![user(10, 1), user(11, 2)]);
        assert!(Model::from_bytes(&m.to_bytes()).is_none());
    }
}

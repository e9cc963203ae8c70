//! The SQL API of DESIGN §4: catalog administration and identity.

pub mod admin;
pub mod authorize;
pub mod identity;
pub mod trigger;

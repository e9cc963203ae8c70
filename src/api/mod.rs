//! The SQL API of DESIGN §4: catalog administration and identity.

pub mod admin;
pub mod audit;
pub mod authorize;
pub mod calendar;
pub mod explain;
pub mod fields;
pub mod identity;
pub mod lifecycle;
pub mod messages;
pub mod modules;
pub mod ownership;
pub mod permission_sets;
pub mod protect;
pub mod restrictions;
pub mod review;
pub mod shares;
pub mod sharing;
pub mod trigger;

//! Who is acting, and the per-backend cache of the compiled model.

pub mod cache;
pub mod denials;
pub mod expiry;
pub mod guc;
pub mod identity;
pub mod plans;
pub mod shares;
pub mod statement;

pub fn init() {
    guc::init();
    cache::init();
    identity::init();
    plans::init();
    statement::init();
    crate::catalog::commits::init();
    crate::catalog::checkpoints::init();
    crate::catalog::publish::init();
}

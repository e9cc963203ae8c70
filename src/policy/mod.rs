//! The DDL `crm.protect` runs (DESIGN §2: "generation of the policies"): the policies and
//! triggers put on a protected table (`protect`), the generated parent-link triggers
//! (`link`), the secure views (`secure_view`), and the names they all use
//! (`trigger_names`). What the policies and triggers call at run time is in `enforce`,
//! their plan-time specialisation in `crate::planner`; the entry points in `api::protect`.

pub mod link;
pub mod protect;
pub mod secure_view;
mod trigger_names;

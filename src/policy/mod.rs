//! Row-level security for protected tables: attaching the policies (`protect`), what they
//! let through (`enforce`), and their plan-time specialisation (`simplify`).

pub mod calendar;
pub mod conversations;
pub mod enforce;
pub mod fields;
pub mod link;
mod nodes;
pub mod protect;
pub mod simplify;

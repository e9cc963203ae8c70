//! Row-level security for protected tables: the policies' and triggers' DDL (`protect`,
//! `link`; `api::protect` holds the entry points), what they let through (`enforce`), and
//! their plan-time specialisation (`simplify`); the triggers that keep copied access columns
//! true (`link`, `linked`) and refuse what policies cannot see (`fields`, `truncate`). Nothing
//! here imports from `api`.

pub mod calendar;
pub mod conversations;
pub mod enforce;
pub mod fields;
pub mod link;
pub mod linked;
mod nodes;
pub mod opened;
pub mod protect;
pub mod rows;
pub mod secure_view;
pub mod simplify;
mod trigger_names;
pub mod truncate;

//! The catalog snapshot: loading it, running SQL with the right rights, facts about tables.

pub mod audit;
pub mod checkpoints;
pub mod compat;
pub mod commits;
pub mod history;
pub mod latest;
pub mod load;
pub mod locks;
pub mod modules;
pub mod privileged;
pub mod publish;
pub mod restore;
pub mod spi;
pub mod tables;

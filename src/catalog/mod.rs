//! The catalog snapshot: loading it, and running catalog SQL with the right rights.

pub mod load;
pub mod privileged;

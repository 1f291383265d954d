//! The last step: hand the assembled environment to COMMAND, either by
//! replacing secretexec (`exec`) or by staying as its parent (`supervise`).

pub mod exec;
pub mod supervise;

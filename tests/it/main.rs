//! One integration test binary that drives the real built `secretexec`
//! against real files, processes and servers. Modules by area.

mod support;

mod age;
mod azure;
mod cli;
mod deploy;
mod docs;
mod manpage;
mod security;
mod sops;
mod supervise;
mod vault;

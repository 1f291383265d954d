//! The `secretexec` binary: runs, then maps the outcome to an exit code.

fn main() {
    std::process::exit(secretexec::run(std::env::args_os().collect()));
}

//! secretexec: puts secrets from external stores into a program's
//! environment, then gets out of the way.
//!
//! Data flows one way:
//! argv + TOML -> [`plan::Plan`] (checked, no I/O) -> [`resolve`] (every
//! source, concurrently) -> [`environment`] (precedence, scrubbing) ->
//! [`launch`] (`execve`, or supervise: spawn, forward, reap, rotate).

pub mod check;
pub mod cli;
pub mod config;
pub mod dotenv;
pub mod duration;
pub mod environment;
pub mod error;
pub mod fsperm;
pub mod hardening;
pub mod http;
pub mod launch;
pub mod log;
pub mod plan;
pub mod pool;
pub mod redact;
pub mod reference;
pub mod render;
pub mod resolve;
pub mod secret;
pub mod sources;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

use crate::cli::{Cli, Command, Common, LogFormat};
use crate::error::{EXIT_FAILURE, Error, Unresolved};
use crate::plan::Plan;
use crate::resolve::{Outcome, Resolution};

/// A random number for jitter and temporary names (not for keys).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    h.finish()
}

/// Runs secretexec with `args` (argv, program name first) and returns the
/// exit code. In exec mode a successful run never returns.
pub fn run(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_FAILURE } else { 0 };
        }
    };
    if matches!(cli.command, Some(Command::Supervise(_))) {
        // Before any thread exists (resolve starts some): every thread
        // inherits the blocked mask, so signals wait for the main loop.
        launch::supervise::block_signals();
    }
    log::init(cli.common.verbose, cli.common.log_format == LogFormat::Json);
    install_panic_hook();
    let limits = hardening::lock_down();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(cli, &limits))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            if !matches!(e, Error::CheckFailed) {
                error!("{e}");
            }
            e.exit_code()
        }
        Err(_) => EXIT_FAILURE,
    }
}

/// Panic messages go through the redactor like every other line we print.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        error!("internal error{at}: {msg}; please report this bug");
    }));
}

fn execute(cli: Cli, limits: &hardening::SavedLimits) -> Result<i32, Error> {
    let plan = load_plan(&cli.common)?;
    debug!(
        "plan: {} assignment(s) from {} source(s), deadline {:?}",
        plan.assignments.len(),
        plan.sources.len(),
        plan.timeout
    );
    let res = resolve::resolve(&plan);
    report_skipped(&res);
    match cli.command {
        Some(Command::Check { json }) => {
            let text = if json { check::json(&plan, &res) } else { check::table(&plan, &res) };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            if res.is_ok() { Ok(0) } else { Err(Error::CheckFailed) }
        }
        Some(Command::Render { format, output }) => {
            require_all(&res)?;
            let bytes = render::render(&res, format)?;
            match output {
                Some(path) => {
                    render::write_atomic(&path, &bytes)?;
                    info!("wrote {} variable(s) to {}", res.values().count(), path.display());
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)
                        .and_then(|()| out.flush())
                        .map_err(|err| Error::Io { about: "cannot write to stdout".into(), err })?;
                }
            }
            Ok(0)
        }
        Some(Command::Supervise(args)) => {
            require_all(&res)?;
            info!("supervising {}", args.argv[0].to_string_lossy());
            launch::supervise::run(&plan, res, &args.argv, &args.options(), limits)
        }
        None => {
            require_all(&res)?;
            let vars = environment::assemble(&plan, &res, std::env::vars_os());
            let envp = environment::materialize(&vars).map_err(|err| Error::Io {
                about: "cannot create an in-memory file for as = \"file\"".into(),
                err,
            })?;
            info!("starting {} with {} variable(s)", cli.argv[0].to_string_lossy(), envp.len());
            Err(launch::exec::exec(&cli.argv, &envp, limits))
        }
    }
}

fn report_skipped(res: &Resolution) {
    for e in &res.entries {
        if let Outcome::Skipped(err) = &e.outcome {
            info!("{} ({}): optional and not found, left unset: {err}", e.name, e.reference);
        }
    }
}

fn require_all(res: &Resolution) -> Result<(), Error> {
    let failures: Vec<Unresolved> = res
        .failures()
        .map(|(e, err)| Unresolved {
            name: e.name.clone(),
            source: e.source.clone(),
            reference: e.reference.clone(),
            error: err.clone(),
        })
        .collect();
    if failures.is_empty() { Ok(()) } else { Err(Error::Resolve(failures)) }
}

/// Finds and loads the mapping, then binds it with the command-line overrides.
pub fn load_plan(common: &Common) -> Result<Plan, Error> {
    let path = match &common.config {
        Some(p) => Some(p.clone()),
        None => config::discover(),
    };
    let adhoc = !common.env.is_empty() || !common.env_file.is_empty();
    let mut problems: Vec<plan::Problem> = Vec::new();
    let config = match &path {
        Some(p) => Some(config::load(p).unwrap_or_else(|broken| {
            problems.extend(broken.problems.into_iter().map(plan::Problem::Config));
            broken.partial
        })),
        None if adhoc => None,
        None => {
            return Err(Error::Usage(
                "no mapping: pass --config FILE, set SECRETEXEC_CONFIG, or create ./secretexec.toml \
                 (or map variables ad hoc with -e NAME=REFERENCE / --env-file FILE)"
                    .into(),
            ));
        }
    };
    let overrides = plan::Overrides {
        profiles: common.profile.clone(),
        env: common.env.clone(),
        env_files: common.env_file.clone(),
        clear_env: common.clear_env,
        keep: common.keep.clone(),
        timeout: common.timeout,
    };
    let plan = match plan::build(config, &overrides) {
        Ok(plan) if problems.is_empty() => plan,
        Ok(_) => return Err(Error::Plan { path, problems }),
        Err(more) => {
            problems.extend(more);
            return Err(Error::Plan { path, problems });
        }
    };
    if let (Some(p), true) = (&path, plan.mapping_holds_credentials()) {
        fsperm::open_secret_file(p, false)
            .map_err(|e| Error::Usage(format!("the mapping holds credentials: {e}")))?;
    }
    Ok(plan)
}

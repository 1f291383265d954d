//! The command line (clap derive). Parsing checks values and does no I/O.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  secretexec --config /etc/app/secretexec.toml -- /usr/bin/app --port 8080
  secretexec -e DB_URL=vault:secret/app#db_url -- ./server
  secretexec --env-file /etc/app/app.env --clear-env -- env
  secretexec supervise --watch 5m -- /usr/bin/app    (stay as its parent; restart on rotation)
  ENTRYPOINT [\"secretexec\", \"supervise\", \"--\"]      (container PID 1: forwards signals, reaps)
  secretexec check --json
  secretexec render --format dotenv --output /run/app/app.env

Exit codes: the command's own (supervise: 128+N if signal N killed it);
125 secretexec failed (config, a required secret, a permission check, auth);
126 command not executable; 127 command not found. `check`: 0 all required
secrets resolve, 1 some do not, 125 usage or config error.";

/// Puts secrets from external stores into a program's environment, then execs it.
///
/// Reads a mapping (which variable comes from which source), fetches every
/// secret, builds the environment and replaces itself with COMMAND. A required
/// secret that cannot be fetched means COMMAND is not started. Secret values
/// never appear in argv, logs, errors or `check` output.
#[derive(Debug, Parser)]
#[command(
    name = "secretexec",
    version,
    after_help = EXAMPLES,
    subcommand_negates_reqs = true,
    max_term_width = 100,
    subcommand_value_name = "SUBCOMMAND",
    override_usage = "secretexec [OPTIONS] [--] COMMAND [ARGS]...\n       \
                      secretexec supervise [OPTIONS] [--] COMMAND [ARGS]...\n       \
                      secretexec check [OPTIONS] [--json]\n       \
                      secretexec render [OPTIONS] --format FORMAT [--output FILE]"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The program to run and its arguments, passed through byte-for-byte.
    #[arg(value_name = "COMMAND", trailing_var_arg = true, required = true, num_args = 1..)]
    pub argv: Vec<OsString>,
}

/// Options shared by every form.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// The mapping file [default: $SECRETEXEC_CONFIG, ./secretexec.toml, /etc/secretexec/secretexec.toml].
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Select a profile of the mapping (repeatable; later wins).
    #[arg(short, long, value_name = "NAME", global = true)]
    pub profile: Vec<String>,

    /// Map one variable ad hoc, e.g. -e DB_URL=vault:secret/app#db_url (repeatable; overrides the mapping).
    #[arg(short = 'e', long = "env", value_name = "NAME=REFERENCE", global = true)]
    pub env: Vec<String>,

    /// Import every key of a 0600 env file, ad hoc (repeatable).
    #[arg(long, value_name = "FILE", global = true)]
    pub env_file: Vec<PathBuf>,

    /// Give the child only the resolved variables and the keep-list.
    #[arg(long, global = true)]
    pub clear_env: bool,

    /// Variables kept under --clear-env (repeatable; replaces the default PATH HOME LANG TERM TZ).
    #[arg(long, value_name = "NAME", global = true)]
    pub keep: Vec<String>,

    /// Deadline for fetching every secret, e.g. 10s [default: timeout in the mapping, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true)]
    pub timeout: Option<Duration>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Never secret values.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve everything and print names, sources and status — never values.
    ///
    /// Exits 0 when every required secret resolves, 1 when any does not, 125
    /// on a usage or configuration error.
    Check {
        /// Print a JSON document (schema in docs/check-json.md) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start COMMAND and stay as its parent: forward signals, reap, rotate secrets.
    ///
    /// Forwards SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH and
    /// SIGCONT to the command's process group; reaps every orphan (as PID 1 or
    /// a subreaper); exits with the command's code, or 128+N if signal N killed
    /// it. With a watch interval, re-resolves the secrets and applies on_change
    /// when a value changed. Settings default to the mapping's [supervise] table.
    Supervise(SuperviseArgs),
    /// Write the resolved variables in a format other tools read.
    ///
    /// With --output, the file is created 0600 next to its final name, fsynced
    /// and renamed into place: it is never readable by others, not even for a
    /// moment. Without it, the variables go to stdout.
    Render {
        #[arg(long, value_enum)]
        format: RenderFormat,
        /// Write to FILE (mode 0600, atomic rename) instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `secretexec supervise` options; each overrides the mapping's `[supervise]`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Supervise options")]
pub struct SuperviseArgs {
    /// Run COMMAND in its own process group and signal the whole group (default).
    #[arg(long, overrides_with = "no_process_group")]
    pub process_group: bool,

    /// Run COMMAND in secretexec's process group and signal COMMAND only.
    #[arg(long, overrides_with = "process_group")]
    pub no_process_group: bool,

    /// Re-resolve every source this often, e.g. 5m (rotation).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub watch: Option<Duration>,

    /// What a changed value does: restart, signal:SIGNAME, or none.
    #[arg(long, value_name = "ACTION", value_parser = crate::config::parse_on_change)]
    pub on_change: Option<crate::config::OnChange>,

    /// Re-resolve on SIGHUP to secretexec (sighup) instead of forwarding it (none).
    #[arg(long, value_name = "WHEN", value_parser = parse_reload_on)]
    pub reload_on: Option<crate::config::ReloadOn>,

    /// The signal that asks COMMAND to stop [default: SIGTERM].
    #[arg(long, value_name = "SIGNAL", value_parser = crate::launch::supervise::signal_by_name)]
    pub stop_signal: Option<i32>,

    /// Wait this long after the stop signal before SIGKILL [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_timeout: Option<Duration>,

    /// Wait a random delay up to this long before acting on a change.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub splay: Option<Duration>,

    /// When a re-resolve fails: keep the command running, or stop it (exit 125).
    #[arg(long, value_name = "WHAT", value_parser = parse_on_error)]
    pub on_error: Option<crate::config::OnError>,

    /// The program to supervise and its arguments, passed through byte-for-byte.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        num_args = 1..,
        help_heading = "Arguments"
    )]
    pub argv: Vec<OsString>,
}

impl SuperviseArgs {
    pub fn options(&self) -> crate::launch::supervise::Options {
        crate::launch::supervise::Options {
            process_group: !self.no_process_group,
            watch: self.watch,
            reload_on: self.reload_on,
            on_change: self.on_change,
            stop_signal: self.stop_signal,
            stop_timeout: self.stop_timeout,
            splay: self.splay,
            on_error: self.on_error,
        }
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match crate::duration::parse(s)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

fn parse_reload_on(s: &str) -> Result<crate::config::ReloadOn, String> {
    match s {
        "sighup" => Ok(crate::config::ReloadOn::Sighup),
        "none" => Ok(crate::config::ReloadOn::None),
        _ => Err("expected sighup or none".into()),
    }
}

fn parse_on_error(s: &str) -> Result<crate::config::OnError, String> {
    match s {
        "keep" => Ok(crate::config::OnError::Keep),
        "stop" => Ok(crate::config::OnError::Stop),
        _ => Err("expected keep or stop".into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// KEY=value lines that secretexec's own env-file parser reads back.
    Dotenv,
    /// One JSON object, names to string values.
    Json,
    /// `export NAME='value'` lines for a POSIX shell.
    Shell,
    /// Lines for systemd's EnvironmentFile=.
    Systemd,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_form_takes_everything_after_the_command() {
        let cli =
            Cli::try_parse_from(["secretexec", "-e", "A=local:A", "--", "ls", "-la", "--", "x"]).unwrap();
        assert_eq!(cli.argv, ["ls", "-la", "--", "x"]);
        let cli = Cli::try_parse_from(["secretexec", "env", "-0"]).unwrap();
        assert_eq!(cli.argv, ["env", "-0"]);
        assert!(cli.command.is_none());
    }

    #[test]
    fn subcommands_take_common_options_anywhere() {
        let cli = Cli::try_parse_from(["secretexec", "-c", "x.toml", "check", "--json", "-p", "a"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check { json: true })));
        assert_eq!(cli.common.config.as_deref(), Some(std::path::Path::new("x.toml")));
        assert_eq!(cli.common.profile, ["a"]);
        let cli = Cli::try_parse_from(["secretexec", "supervise", "--no-process-group", "--", "app", "-x"])
            .unwrap();
        match cli.command {
            Some(Command::Supervise(s)) => {
                assert_eq!(s.argv, ["app", "-x"]);
                assert!(!s.options().process_group);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["secretexec", "--", "check"]).unwrap();
        assert_eq!(cli.argv, ["check"], "-- makes check a program name");
    }
}

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
  secretexec check --json
  secretexec render --format dotenv --output /run/app/app.env

Exit codes: the command's own; 125 secretexec failed (config, a required
secret, a permission check, auth); 126 command not executable; 127 command
not found. `check`: 0 all required secrets resolve, 1 some do not, 125 usage
or config error.";

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
    override_usage = "secretexec [OPTIONS] [--] COMMAND [ARGS]...\n       secretexec check [OPTIONS] [--json]\n       secretexec render [OPTIONS] --format FORMAT [--output FILE]"
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
        let cli = Cli::try_parse_from(["secretexec", "--", "check"]).unwrap();
        assert_eq!(cli.argv, ["check"], "-- makes check a program name");
    }
}

//! `type = "envfile"`: a dotenv file with strict permissions.
//!
//! Locators: `KEY` or `*` (every key, in file order). Bare references:
//! `envfile:/path/to/file#KEY` or `envfile:/path/to/file` (every key).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Backend, Context, FailKind, FetchError, Fetched};
use crate::dotenv;
use crate::fsperm;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    /// The dotenv file. Relative paths are relative to the mapping file.
    pub path: PathBuf,
    /// Accept a symlink at `path` (the target still gets every other check).
    #[serde(default)]
    pub follow_symlinks: bool,
}

pub fn check_locator(locator: &str) -> Result<(), String> {
    match locator {
        "*" => Ok(()),
        "" => Err("expected a key name or * after the source name".into()),
        key => super::check_dotenv_key(key),
    }
}

pub fn adhoc(rest: &str) -> Result<(Config, String), String> {
    let (path, key) = super::split_file_reference(rest, false, "envfile:/path/to/file#KEY")?;
    check_locator(&key)?;
    Ok((Config { path, follow_symlinks: false }, key))
}

pub struct EnvFile {
    config: Config,
}

impl EnvFile {
    pub fn new(_name: &str, config: Config) -> Self {
        Self { config }
    }
}

impl Backend for EnvFile {
    fn fetch(&self, _ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>> {
        let path = &self.config.path;
        let entries = fsperm::read_secret_file(path, self.config.follow_symlinks)
            .map_err(FetchError::from)
            .and_then(|bytes| {
                dotenv::parse(bytes.expose()).map_err(|e| {
                    FetchError::new(FailKind::Corrupt, format!("{}: {e}", path.display()))
                        .with_hint("see docs/envfile.md for the accepted syntax")
                })
            });
        let entries = match entries {
            Ok(e) => e,
            Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
        };
        locators.iter().map(|&loc| super::answer_from_dotenv(&entries, loc, path)).collect()
    }

    fn describe(&self) -> Option<String> {
        Some(format!("file {}", self.config.path.display()))
    }
}

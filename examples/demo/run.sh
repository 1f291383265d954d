#!/usr/bin/env bash
# The main job on the built-in example, from a fresh clone:
#   bash examples/demo/run.sh
# Builds secretexec, copies the demo mapping and its DEMO env file into a
# private directory (the env file 0600, as secretexec requires), shows
# `check`, then runs a command with the secrets in its environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo build --quiet --manifest-path "$here/../../Cargo.toml"
bin="$here/../../target/debug/secretexec"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install -m 600 "$here/demo.env" "$work/demo.env"
install -m 644 "$here/secretexec.toml" "$work/secretexec.toml"

echo "\$ secretexec check"
"$bin" --config "$work/secretexec.toml" check
echo
echo "\$ secretexec -- sh -c '...'"
"$bin" --config "$work/secretexec.toml" -- sh -c '
  echo "DATABASE_URL has ${#DATABASE_URL} characters"
  echo "API_TOKEN     = $API_TOKEN"
  echo "SMTP_PASSWORD = $SMTP_PASSWORD"
  echo "LOG_LEVEL     = $LOG_LEVEL"
  echo "TLS_KEY       = $TLS_KEY -> $(cat "$TLS_KEY")"
'

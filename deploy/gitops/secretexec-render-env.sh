#!/bin/sh
# Renders the resolved variables into a 0600 dotenv file, for a deploy step
# whose target reads an env file (docker compose `env_file:`, systemd
# `EnvironmentFile=`, a PaaS CLI that uploads one).
#
#   deploy/gitops/secretexec-render-env.sh /run/deploy/app.env --config deploy/prod.toml
#
# The first argument is the output file; the rest go to secretexec. The file
# is created 0600 next to its final name and renamed into place, so it is
# never readable by others and never half-written; if a required secret is
# missing, nothing is written and the step fails (status 125). Delete the
# file when the step is done: it is a copy of the secrets at rest.
set -eu

if [ $# -lt 1 ]; then
  echo "usage: $0 OUTPUT [secretexec options...]" >&2
  exit 2
fi
output=$1
shift
umask 077
secretexec "$@" render --format dotenv --output "$output"
mode=$(stat -c %a "$output")
if [ "$mode" != 600 ]; then
  echo "$output has mode $mode, expected 600" >&2
  exit 1
fi
echo "secretexec: wrote $output (0600)"

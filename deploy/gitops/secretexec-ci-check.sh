#!/bin/sh
# A pre-deploy CI step: fails the pipeline when a required secret of the
# mapping does not resolve, before anything is rolled out.
#
#   deploy/gitops/secretexec-ci-check.sh --config deploy/prod.toml -p billing
#
# Arguments are passed to secretexec (--config, -p, --timeout, ...). Runs
# `secretexec check --json`, keeps the report (names, sources, status; never
# a value) in $SECRETEXEC_CHECK_REPORT (default secretexec-check.json) for
# the CI to archive, and prints the variables that did not resolve.
#
# Exit status: 0 every required secret resolves; 1 some do not; 125 the
# mapping or the command line is wrong (secretexec's message is on stderr).
set -u

report=${SECRETEXEC_CHECK_REPORT:-secretexec-check.json}
status=0
secretexec "$@" check --json > "$report" || status=$?

case $status in
  0)
    echo "secretexec: every required secret resolves"
    ;;
  1)
    echo "secretexec: required secrets did not resolve; not deploying:" >&2
    if command -v jq > /dev/null 2>&1; then
      jq -r '.variables[] | select(.status == "error") | "  \(.name) (\(.reference)): \(.error)"' "$report" >&2
    else
      # The report is pretty-printed, one field per line: pair each name
      # with its status.
      awk -F'"' '$2 == "name" { name = $4 } $2 == "status" && $4 == "error" { print "  " name }' "$report" >&2
    fi
    echo "full report: $report" >&2
    ;;
  *)
    echo "secretexec check failed with status $status (see above); not deploying" >&2
    ;;
esac
exit "$status"

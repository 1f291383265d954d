#!/bin/sh
# Stand-in for an application: reports which secrets it got (never their
# values) and waits for a signal.
set -eu
for name in DATABASE_URL API_KEY; do
  if eval "[ -n \"\${$name:-}\" ]"; then echo "server: $name is set"; else echo "server: $name is missing" >&2; fi
done
trap 'echo "server: stopping"; exit 0' TERM INT
while :; do sleep 3600 & wait $!; done

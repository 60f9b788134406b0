#!/bin/sh
# Drop-in for the old /app/alert.sh: hands every argument to l2alert.
exec "$(dirname -- "$0")/l2ops-exec.sh" l2alert "$@"

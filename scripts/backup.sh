#!/bin/sh
# Drop-in for the old /app/backup.sh: hands every argument to l2backup.
exec "$(dirname -- "$0")/l2ops-exec.sh" l2backup "$@"

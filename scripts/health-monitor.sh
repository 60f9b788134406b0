#!/bin/sh
# Drop-in for the old /app/health-monitor.sh: hands every argument to l2health.
exec "$(dirname -- "$0")/l2ops-exec.sh" l2health "$@"

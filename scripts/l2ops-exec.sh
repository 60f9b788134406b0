#!/bin/sh
# Runs an l2ops program: `l2ops-exec.sh l2backup nightly`.
# Works from the repository checkout (scripts/ beside bin/) and from /app in the image.
# Run as root (docker compose exec), it drops to the l2ops user first, so every file on the
# backups volume stays owned by the user the cron jobs run as.
set -eu
program=$1
shift
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
if [ -x "$here/bin/$program.js" ]; then
  entry="$here/bin/$program.js"
elif [ -x "$here/../bin/$program.js" ]; then
  entry="$here/../bin/$program.js"
else
  echo "l2ops: cannot find bin/$program.js next to $here; reinstall l2ops" >&2
  exit 2
fi
user=${L2_RUN_AS:-l2ops}
if [ "$(id -u)" = 0 ] && id -u "$user" >/dev/null 2>&1; then
  home=$(getent passwd "$user" | cut -d: -f6)
  exec setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$home" USER="$user" LOGNAME="$user" node "$entry" "$@"
fi
exec node "$entry" "$@"

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
run() {
  if [ "$(id -u)" = 0 ] && id -u "$user" >/dev/null 2>&1; then
    home=$(getent passwd "$user" | cut -d: -f6)
    exec setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$home" USER="$user" LOGNAME="$user" node "$entry" "$@"
  fi
  exec node "$entry" "$@"
}
# In the container, a run by hand (docker compose exec) also copies its log lines (stderr) to
# the container's log pipe, so `docker compose logs cron` shows it like a cron job. Cron jobs
# already write there (>> "$L2_LOG" 2>&1): their lines are not copied twice.
# Only while the entrypoint's copier reads the pipe: with no reader, opening it would block.
pipe=${L2_LOG_PIPE:-/run/l2ops/log.pipe}
copier=$(cat "$(dirname -- "$pipe")/log-copier.pid" 2>/dev/null || true)
if [ -p "$pipe" ] && [ -w "$pipe" ] && [ -n "$copier" ] && [ -d "/proc/$copier" ] \
  && [ "$(stat -L -c %d:%i "/proc/$$/fd/2" 2>/dev/null)" != "$(stat -c %d:%i "$pipe")" ]; then
  # stdout goes straight to the caller (fd 3); stderr through tee to the caller and the pipe;
  # the program's exit code comes back on fd 4.
  exec 3>&1
  code=$( { { (run "$@" 4>&-); echo $? >&4; } 2>&1 1>&3 3>&- | tee -a "$pipe" >&2 3>&- 4>&-; } 4>&1 ) || true
  exit "${code:-1}"
fi
run "$@"

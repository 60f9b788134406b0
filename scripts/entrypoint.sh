#!/bin/sh
# The cron container's PID 1. It prepares the volume and the log pipe, installs the crontab
# for the non-root user, runs cron in the foreground, and on SIGTERM (docker stop) asks the
# running jobs to stop cleanly before it exits: when PID 1 exits, the kernel SIGKILLs every
# process left, which would leave a job no chance to release its lock.
# Environment: L2_CRONTAB (the schedule to install, default /app/crontab: mount another file
# and point this at it to change the schedule without rebuilding), L2_STOP_WAIT_SECONDS
# (how long a stop waits for running jobs, default 25; keep it under the stop grace period).
set -eu
# With a command (`docker run --rm -v l2-dash_backups:/backups IMAGE ls /backups`), run just
# that: a throwaway container of this image serves the runbook's restores like alpine does.
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
user=${L2_RUN_AS:-l2ops}
root=${BACKUP_ROOT:-/backups}
app=${L2_APP:-/app}
schedule=${L2_CRONTAB:-$app/crontab}
stop_wait=${L2_STOP_WAIT_SECONDS:-25}
jobs_pattern='bin/l2(backup|alert|health)\.js'
now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }

case "$stop_wait" in
  ''|*[!0-9]*) echo "$(now) ERROR entrypoint: L2_STOP_WAIT_SECONDS=\"$stop_wait\" is not valid: expected whole seconds" >&2; exit 2 ;;
esac
if [ ! -r "$schedule" ]; then
  echo "$(now) ERROR entrypoint: L2_CRONTAB=$schedule cannot be read; mount the crontab there or unset L2_CRONTAB for the built-in $app/crontab" >&2
  exit 2
fi

# The volume belongs to the job user (a fresh named volume is root's).
install -d -o "$user" -g "$user" -m 0755 "$root"
install -d -o "$user" -g "$user" -m 0700 "$root/.l2"
chown "$user:$user" "$root"

# Job output reaches `docker compose logs cron`: the jobs, as $user, cannot open PID 1's
# stdout, so they write to a pipe that this process copies to its own stdout. The copier's
# pid is kept for the health check: with no reader, a job's first line would block it.
install -d -m 0755 /run/l2ops
rm -f /run/l2ops/log.pipe
mkfifo -m 0620 /run/l2ops/log.pipe
chown "root:$user" /run/l2ops/log.pipe
( while :; do cat /run/l2ops/log.pipe; done ) &
pipe_reader=$!
echo "$pipe_reader" >/run/l2ops/log-copier.pid

# The runbook reads the buffer at /tmp/alerts_buffer.jsonl; it lives on the volume. The
# buffer file exists from the start, so reading it with nothing buffered succeeds.
if [ ! -e "$root/.l2/alerts_buffer.jsonl" ]; then
  install -o "$user" -g "$user" -m 0600 /dev/null "$root/.l2/alerts_buffer.jsonl"
fi
ln -sfn "$root/.l2/alerts_buffer.jsonl" /tmp/alerts_buffer.jsonl

crontab -u "$user" "$schedule"
echo "$(now) INFO  entrypoint: crontab $schedule installed for $user; cron starting"

cron -f &
cron_pid=$!

stop() {
  trap '' TERM INT
  echo "$(now) INFO  entrypoint: stopping: asking running jobs to finish"
  kill -TERM "$cron_pid" 2>/dev/null || true
  pkill -TERM -u "$user" -f "$jobs_pattern" 2>/dev/null || true
  # Return as soon as the last job has ended: poll often, for at most $stop_wait seconds.
  i=0
  while [ "$i" -lt $((stop_wait * 10)) ] && pgrep -u "$user" -f "$jobs_pattern" >/dev/null 2>&1; do
    sleep 0.1
    i=$((i + 1))
  done
  if pgrep -u "$user" -f "$jobs_pattern" >/dev/null 2>&1; then
    echo "$(now) WARN  entrypoint: jobs still running after ${stop_wait}s; they will be killed"
  else
    echo "$(now) INFO  entrypoint: all jobs ended; stopped"
  fi
  kill "$pipe_reader" 2>/dev/null || true
  exit 0
}
trap stop TERM INT
wait "$cron_pid"

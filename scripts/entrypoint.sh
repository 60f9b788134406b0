#!/bin/sh
# The cron container's PID 1. It prepares the volume and the log pipe, installs the crontab
# for the non-root user, runs cron in the foreground, and on SIGTERM (docker stop) asks the
# running jobs to stop cleanly before it exits: when PID 1 exits, the kernel SIGKILLs every
# process left, which would leave a job no chance to release its lock.
set -eu
user=${L2_RUN_AS:-l2ops}
root=${BACKUP_ROOT:-/backups}
app=${L2_APP:-/app}

# The volume belongs to the job user (a fresh named volume is root's).
install -d -o "$user" -g "$user" -m 0755 "$root"
install -d -o "$user" -g "$user" -m 0700 "$root/.l2"
chown "$user:$user" "$root"

# Job output reaches `docker compose logs cron`: the jobs, as $user, cannot open PID 1's
# stdout, so they write to a pipe that this process copies to its own stdout.
install -d -m 0755 /run/l2ops
rm -f /run/l2ops/log.pipe
mkfifo -m 0620 /run/l2ops/log.pipe
chown "root:$user" /run/l2ops/log.pipe
( while :; do cat /run/l2ops/log.pipe; done ) &
pipe_reader=$!

# The runbook reads the buffer at /tmp/alerts_buffer.jsonl; it lives on the volume.
ln -sfn "$root/.l2/alerts_buffer.jsonl" /tmp/alerts_buffer.jsonl

crontab -u "$user" "$app/crontab"
echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) INFO  entrypoint: crontab installed for $user; cron starting"

cron -f &
cron_pid=$!

stop() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) INFO  entrypoint: stopping: asking running jobs to finish"
  kill -TERM "$cron_pid" 2>/dev/null || true
  pkill -TERM -u "$user" -f 'bin/l2(backup|alert|health)\.js' 2>/dev/null || true
  i=0
  while [ "$i" -lt 20 ] && pgrep -u "$user" -f 'bin/l2(backup|alert|health)\.js' >/dev/null 2>&1; do
    sleep 0.5
    i=$((i + 1))
  done
  kill "$pipe_reader" 2>/dev/null || true
  exit 0
}
trap stop TERM INT
wait "$cron_pid"

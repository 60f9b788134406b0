#!/bin/sh
# Installs the l2ops schedule into an existing crontab on a host without Docker, as a marked
# block, keeping every other line; run it again to update, with --remove to take it out.
#   scripts/install-crontab.sh [--user USER] [--env-file FILE] [--log FILE] [--backup-root DIR] [--remove] [--print]
# --user: whose crontab (default: yours; root needed for another user's). The jobs run as that user.
# --env-file: configuration the jobs read (default /app/.env). --log: where job output goes
#   (default /var/log/l2ops.log, created writable by the job user). --backup-root: the
#   backups folder (default: BACKUP_ROOT from the env file, else /backups), for the runbook's
#   /tmp/alerts_buffer.jsonl, linked to the alert buffer there.
set -eu
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
user=''
env_file=/app/.env
log=/var/log/l2ops.log
backup_root=''
action=install
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then
    echo "install-crontab: $1 needs a value; see --help" >&2
    exit 2
  fi
}
while [ "$#" -gt 0 ]; do
  case "$1" in
    --user) need_value "$@"; user=$2; shift 2 ;;
    --env-file) need_value "$@"; env_file=$2; shift 2 ;;
    --log) need_value "$@"; log=$2; shift 2 ;;
    --backup-root) need_value "$@"; backup_root=$2; shift 2 ;;
    --remove) action=remove; shift ;;
    --print) action=print; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-crontab: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
begin='# BEGIN l2ops (managed by scripts/install-crontab.sh; edit the repository crontab instead)'
end='# END l2ops'
job_user=${user:-$(id -un)}
if ! id -u "$job_user" >/dev/null 2>&1; then
  echo "install-crontab: no user '$job_user' on this host; create it or pass --user" >&2
  exit 2
fi

crontab_cmd() {
  if [ -n "$user" ]; then crontab -u "$user" "$@"; else crontab "$@"; fi
}

block() {
  echo "$begin"
  # The repository's crontab, with this host's paths in its variable lines.
  sed -e "s#^L2_APP=.*#L2_APP=$here#" -e "s#^L2_ENV_FILE=.*#L2_ENV_FILE=$env_file#" -e "s#^L2_LOG=.*#L2_LOG=$log#" "$here/../crontab" | grep -v '^#'
  echo "$end"
}

# The job user must be able to append to the log, or every job's output is lost (cron mails
# it nowhere) and the job line fails before the program starts.
prepare_log() {
  if [ "$(id -u)" = 0 ]; then
    install -d -m 0755 "$(dirname -- "$log")"
    [ -e "$log" ] || install -m 0640 /dev/null "$log"
    chown "$job_user:$(id -gn "$job_user")" "$log"
  elif ! { [ -e "$log" ] && [ -w "$log" ]; } && ! { [ ! -e "$log" ] && [ -w "$(dirname -- "$log")" ]; }; then
    echo "install-crontab: $job_user cannot write the log $log; pass --log FILE in a folder of yours, or run as root" >&2
    exit 2
  fi
}

# The runbook reads the alert buffer at /tmp/alerts_buffer.jsonl: link it to the buffer on the
# backups folder (created empty, the job user's). /tmp is emptied at boot: where systemd's
# tmpfiles exist, a rule recreates the link. The link is root's when root runs this, so root
# may follow it in the sticky /tmp (fs.protected_symlinks).
link_buffer() {
  if [ -z "$backup_root" ]; then
    backup_root=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}BACKUP_ROOT=["'\'']\{0,1\}\([^"'\'']*\)["'\'']\{0,1\}[[:space:]]*$/\2/p' "$env_file" 2>/dev/null | tail -n 1)
    backup_root=${backup_root:-/backups}
  fi
  buffer="$backup_root/.l2/alerts_buffer.jsonl"
  if [ "$(id -u)" = 0 ]; then
    install -d -o "$job_user" -m 0755 "$backup_root"
    install -d -o "$job_user" -m 0700 "$backup_root/.l2"
    [ -e "$buffer" ] || install -o "$job_user" -m 0600 /dev/null "$buffer"
    if [ -d /etc/tmpfiles.d ]; then
      printf 'L+ /tmp/alerts_buffer.jsonl - - - - %s\n' "$buffer" >/etc/tmpfiles.d/l2ops.conf
    fi
  elif [ -d "$backup_root/.l2" ] && [ ! -e "$buffer" ]; then
    : >"$buffer"
    chmod 0600 "$buffer"
  fi
  ln -sfn "$buffer" /tmp/alerts_buffer.jsonl
}

current=$(crontab_cmd -l 2>/dev/null || true)
# Everything but our block.
others=$(printf '%s\n' "$current" | awk -v b="$begin" -v e="$end" '$0==b{skip=1;next} $0==e{skip=0;next} !skip')

case "$action" in
  print) block; exit 0 ;;
  remove)
    new=$others
    if [ "$(id -u)" = 0 ] && [ -f /etc/tmpfiles.d/l2ops.conf ]; then rm -f /etc/tmpfiles.d/l2ops.conf; fi
    ;;
  install)
    prepare_log
    link_buffer
    new=$(printf '%s\n%s\n' "$others" "$(block)")
    ;;
esac
# Drop the blank lines an empty crontab leaves at the top; nothing left: no crontab at all.
new=$(printf '%s\n' "$new" | sed '/./,$!d')
if [ -z "$(printf '%s' "$new" | tr -d '[:space:]')" ]; then
  crontab_cmd -r 2>/dev/null || true
else
  printf '%s\n' "$new" | crontab_cmd -
fi
echo "install-crontab: $action done for $job_user"

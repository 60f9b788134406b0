#!/bin/sh
# Installs the l2ops schedule into an existing crontab on a host without Docker, as a marked
# block, keeping every other line; run it again to update, with --remove to take it out.
#   scripts/install-crontab.sh [--user USER] [--env-file FILE] [--log FILE] [--remove] [--print]
set -eu
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
user=''
env_file=/app/.env
log=/var/log/l2ops.log
action=install
while [ "$#" -gt 0 ]; do
  case "$1" in
    --user) user=$2; shift 2 ;;
    --env-file) env_file=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --remove) action=remove; shift ;;
    --print) action=print; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-crontab: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
begin='# BEGIN l2ops (managed by scripts/install-crontab.sh; edit the repository crontab instead)'
end='# END l2ops'

crontab_cmd() {
  if [ -n "$user" ]; then crontab -u "$user" "$@"; else crontab "$@"; fi
}

current=$(crontab_cmd -l 2>/dev/null || true)
# Everything but our block.
others=$(printf '%s\n' "$current" | awk -v b="$begin" -v e="$end" '$0==b{skip=1;next} $0==e{skip=0;next} !skip')

block() {
  echo "$begin"
  # The repository's crontab, with this host's paths in its variable lines.
  sed -e "s#^L2_APP=.*#L2_APP=$here#" -e "s#^L2_ENV_FILE=.*#L2_ENV_FILE=$env_file#" -e "s#^L2_LOG=.*#L2_LOG=$log#" "$here/../crontab" | grep -v '^#'
  echo "$end"
}

case "$action" in
  print) block; exit 0 ;;
  remove) new=$others ;;
  install) new=$(printf '%s\n%s\n' "$others" "$(block)") ;;
esac
# Drop the blank lines an empty crontab leaves at the top.
printf '%s\n' "$new" | sed '/./,$!d' | crontab_cmd -
echo "install-crontab: $action done for ${user:-$(id -un)}"

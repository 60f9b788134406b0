#!/bin/sh
# Installed in the image as /usr/local/bin/crontab, ahead of /usr/bin/crontab in PATH.
# The schedule belongs to the non-root l2ops user, but the runbook runs
# `docker compose exec cron crontab -l` as root: that one call shows l2ops's crontab.
# Every other use goes to the real crontab unchanged.
if [ "$(id -u)" = 0 ] && [ "$#" -eq 1 ] && [ "$1" = "-l" ]; then
  exec /usr/bin/crontab -u "${L2_RUN_AS:-l2ops}" -l
fi
exec /usr/bin/crontab "$@"

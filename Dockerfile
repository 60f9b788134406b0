# syntax=docker/dockerfile:1
# The L2 Dash cron container: l2backup, l2alert and l2health run by cron as the non-root
# user l2ops. Node.js 24 is the supported LTS line; the code also runs on Node.js 20.
# NODE_IMAGE: any Debian-based Node.js image with npm (production needs no argument; the
# project's CI builds on a local stand-in, see scripts/container-base.sh).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle.mjs scripts/code-cache.cjs ./scripts/
COPY bin ./bin
COPY src ./src
# One standalone bundle per program (npm packages included, minified, split into lazily
# loaded chunks): the runtime stage needs no node_modules. The light bundles' V8 code caches
# (dist/bundle/*.cjs.cache) are made here, by the image's own Node.js, which the runtime stage shares.
RUN npx tsc -p tsconfig.build.json && node scripts/bundle.mjs --standalone

FROM ${NODE_IMAGE}
# cron runs the jobs, procps gives the entrypoint pgrep/pkill; systemd-standalone-sysusers
# satisfies cron's need for sysusers without pulling in all of systemd (15 MB). No docs or
# man pages for these. Debian's cron asks PAM for a login uid, which a container cannot set:
# that one PAM line is made optional.
RUN printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' >/etc/dpkg/dpkg.cfg.d/l2ops-nodoc \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cron procps systemd-standalone-sysusers \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && sed -i 's/^\(session\s\+\)required\(\s\+pam_loginuid\.so\)/\1optional\2/' /etc/pam.d/cron \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/l2ops --shell /usr/sbin/nologin l2ops
WORKDIR /app
COPY --from=build /src/dist/bundle ./dist/bundle
COPY package.json crontab ./
COPY bin ./bin
COPY scripts/l2ops-exec.sh scripts/backup.sh scripts/alert.sh scripts/health-monitor.sh scripts/entrypoint.sh scripts/healthcheck.mjs ./
COPY scripts/crontab-shim.sh /usr/local/bin/crontab
# `l2backup ...` by name also drops to l2ops when run as root, like the /app/*.sh wrappers.
RUN for p in l2backup l2alert l2health; do \
      printf '#!/bin/sh\nexec /app/l2ops-exec.sh %s "$@"\n' "$p" >"/usr/local/bin/$p" && chmod 0755 "/usr/local/bin/$p"; \
    done \
 && /usr/bin/crontab -u l2ops /app/crontab
ENV BACKUP_ROOT=/backups \
    L2_ENV_FILE=/app/.env \
    L2_RUN_AS=l2ops \
    L2_CRONTAB=/app/crontab \
    TZ=UTC
VOLUME ["/backups"]
# Healthy while cron and the log copier run, the last backup job did not fail and the
# health job keeps running (scripts/healthcheck.mjs).
HEALTHCHECK --interval=1m --timeout=10s --start-period=30s --retries=2 CMD ["node", "/app/healthcheck.mjs"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/entrypoint.sh"]

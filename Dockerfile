# syntax=docker/dockerfile:1
# The L2 Dash cron container: l2backup, l2alert and l2health run by cron as the non-root
# user l2ops. Node.js 24 is the supported LTS line; the code also runs on Node.js 20.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends cron procps ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/l2ops --shell /usr/sbin/nologin l2ops
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json crontab ./
COPY bin ./bin
COPY scripts/l2ops-exec.sh scripts/backup.sh scripts/alert.sh scripts/health-monitor.sh scripts/entrypoint.sh ./
COPY scripts/crontab-shim.sh /usr/local/bin/crontab
RUN ln -s /app/bin/l2backup.js /usr/local/bin/l2backup \
 && ln -s /app/bin/l2alert.js /usr/local/bin/l2alert \
 && ln -s /app/bin/l2health.js /usr/local/bin/l2health \
 && /usr/bin/crontab -u l2ops /app/crontab
ENV BACKUP_ROOT=/backups \
    L2_ENV_FILE=/app/.env \
    L2_RUN_AS=l2ops \
    TZ=UTC
VOLUME ["/backups"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/entrypoint.sh"]

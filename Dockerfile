# syntax=docker/dockerfile:1
# Sesame: build with every dependency, run with production ones only, as an unprivileged user.
#   docker build -t sesame .
#   docker run -p 3000:3000 -v sesame-data:/app/data sesame             # http://localhost:3000
# Public, behind a TLS-terminating proxy that forwards https://id.example.com to port 3000:
#   docker run -p 127.0.0.1:3000:3000 -v sesame-data:/app/data \
#     -e ISSUER=https://id.example.com -e TRUST_PROXY=1 sesame
# With Postgres and Caddy as that proxy, see compose.yaml.

ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: TypeScript -> dist/ (the server as one file, dist/src/main.js), browser bundles -> public/js/
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts are skipped here because `prepare` builds, and the sources are not copied yet;
# the build runs below, after them, so a code change does not reinstall dependencies.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node scripts/build.mjs

# ---- runtime
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build again; the build stage's output is copied below.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/migrations ./dist/migrations
# An initialised embedded-database cluster: a first start copies it instead of running initdb.
# It stays root's: the build makes it readable by all (files 0644), so `node` copies it and
# cannot change it.
COPY --from=build /app/dist/pglite-template ./dist/pglite-template
COPY --from=build /app/dist/pglite-template.version ./dist/pglite-template.version
COPY --from=build /app/public ./public
COPY views ./views
COPY locales ./locales
COPY bin ./bin
# `sesame ...` on the PATH: docker compose exec sesame sesame clients list
RUN ln -s /app/bin/sesame.js /usr/local/bin/sesame
# The embedded database (used when DATABASE_URL is unset) lives in the volume; it must be
# writable by the unprivileged user before the volume is declared, so a new volume inherits it.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
VOLUME /app/data
# slim images have no curl: ask Node's fetch. The first start creates the database, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM itself (drains requests, closes the database, exits 0).
# The flags are the ones `npm start` uses: an 8 MB semi-space (V8's default is 16 MB; V8 rounds
# the size up to a power of two, so the 6 set until 2026-12-05 was 8 as well), and an old
# generation allowed to grow by 40 % of what survived the last full GC (V8 lets it grow up to
# 4x), keep RSS under load below 150 MB while collecting the young generation less often than
# at 4 MB (bench/README.md, "19:30–20:45" and "2026-12-05").
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=40", "dist/src/main.js"]

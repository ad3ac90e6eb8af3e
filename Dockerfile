# hookstream as a container: `hookstream run` (ingest on :8080, health and metrics on :8088; with ADMIN_TOKEN the admin
# API on 127.0.0.1:8081, inside the container only: set ADMIN_ADDR=:8081 and publish it as -p 127.0.0.1:8081:8081).
#   docker build -t hookstream .          (podman: podman build --pull=never -t hookstream .)
#   docker run -p 8080:8080 -p 8088:8088 -e REDIS_URL=… -e DATABASE_URL=… \
#     -e HOOKSTREAM_CONFIG=/etc/hookstream/hookstream.yaml -v ./hookstream.yaml:/etc/hookstream/hookstream.yaml:ro hookstream
# The image has no embedded Redis or PostgreSQL: set REDIS_URL (or REDIS_ADDR) and DATABASE_URL (or DATABASE_HOST, …).

# ---- build: dev dependencies + TypeScript → dist/
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (it is not stored in any layer):
#   docker build --secret id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt .   (podman build takes the same flag)
# npm warns that esbuild and msgpackr-extract (under the dev tools tsx and bullmq) have install scripts;
# the build (tsc) needs neither, and the runtime image never gets them
RUN --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- production dependencies only (none of them needs an install script); source maps and type declarations
# are not read at runtime and are ~40% of node_modules, so they go
# rxjs, ioredis, kysely and pg are peer dependencies (a library user brings their own instances) and dev
# dependencies (for the tests); the service needs them, so this stage counts them as production dependencies
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    node -e "const fs=require('fs'),p=JSON.parse(fs.readFileSync('package.json'));for(const k in p.peerDependencies){p.dependencies[k]=p.devDependencies[k];delete p.devDependencies[k]}fs.writeFileSync('package.json',JSON.stringify(p))" && \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force && \
    find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete

# ---- runtime
FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="hookstream" \
      org.opencontainers.image.description="Webhook and event pipeline: Redis Streams in, RxJS operators, PostgreSQL and HTTP out" \
      org.opencontainers.image.licenses="MIT"
# Node 24 sizes V8's young generation from the heap limit (up to 3 x 64 MB on a large host). 16 MB semi-spaces
# keep RSS low, and the store path spends less CPU: its off-heap buffers are freed by scavenges instead of
# piling up into major GCs (README, Performance). Override NODE_OPTIONS to change it.
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
# package.json is needed at runtime: its "type": "module" makes dist/*.js ES modules
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
# root owns the code (read-only for the service); only .hookstream (embedded mode's data dir) is writable
RUN mkdir -p /app/.hookstream && chown node:node /app/.hookstream
USER node
EXPOSE 8080 8088
# the slim image has no curl: probe /health/live with Node's fetch, on the port HEALTH_ENDPOINT names (default :8088)
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.HEALTH_ENDPOINT||':8088').split(':').pop();fetch('http://127.0.0.1:'+p+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# exec form, no shell in between: SIGTERM reaches Node (PID 1), which drains and exits 0
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["run"]

# orchestry-sidecar: health checks, circuit breaking and upstream rewriting for nginx.
#
#   docker build -t orchestry-sidecar .
#   docker run --rm -v "$PWD/conf:/etc/orchestry:ro" orchestry-sidecar    # conf/sidecar.yaml
#
# Three stages on the same base: `build` compiles TypeScript with the dev dependencies, `deps`
# installs the production dependencies alone, and the final stage gets dist/, those
# node_modules, the templates and the nginx example: no compiler, no test tools, no npm cache.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script here; ssh2's optional native crypto
# build (dockerode's SSH transport, unused) would only fail noisily without a compiler.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# Source maps point at src/, which the image does not have.
RUN npm run build && find dist -name '*.map' -delete

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional drops handlebars' uglify-js (precompiler CLI only) and ssh2's native extras.
# Type declarations, source maps and docs are never loaded at run time: ~40% of node_modules.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
      -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) -delete

FROM ${NODE_IMAGE}
# Keep VERSION in step with package.json (test/integration/image.test.ts checks that they match).
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/orchestry/orchestry-sidecar
LABEL org.opencontainers.image.title="orchestry-sidecar" \
      org.opencontainers.image.description="Health-checking, circuit-breaking sidecar that keeps nginx upstreams in step with healthy backends" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

# A fixed uid/gid, so that volumes and the Docker socket's group can be granted to it by number.
RUN groupadd --system --gid 10001 orchestry \
 && useradd --system --uid 10001 --gid orchestry --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin orchestry \
 && mkdir -p /etc/orchestry /shared/conf.d /var/lib/orchestry \
 && chown orchestry:orchestry /shared/conf.d /var/lib/orchestry

WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY templates ./templates
COPY nginx ./nginx

ENV NODE_ENV=production \
    ORCHESTRY_CONFIG=/etc/orchestry/sidecar.yaml \
    ORCHESTRY_STORE_PATH=/var/lib/orchestry/state.db
# /etc/orchestry: the config file (mount it read-only; edits are picked up without a restart).
# /shared/conf.d: where the generated upstreams file goes (nginx.output_path); share it with nginx.
# /var/lib/orchestry: the state store (SQLite: probe history, breaker states, recovery budgets,
# undelivered alerts), so a new container picks up where the old one left off.
# A new named volume mounted there starts out owned by the orchestry user.
VOLUME ["/etc/orchestry", "/shared/conf.d", "/var/lib/orchestry"]

USER orchestry:orchestry

# Liveness of the admin server. It listens on ORCHESTRY_ADMIN_LISTEN when that is set (a
# wildcard address is checked on loopback), else on the default 127.0.0.1:9180; set the admin
# address through that variable, not in the file, for this check to find it. slim has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const l=(process.env.ORCHESTRY_ADMIN_LISTEN||'127.0.0.1:9180').replace(/^0\\.0\\.0\\.0:/,'127.0.0.1:').replace(/^\\[::\\]:/,'[::1]:');fetch('http://'+l+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# The CLI stops gracefully on SIGTERM: probes, the Docker event stream and the admin server are
# closed, nginx keeps its last good upstreams. node runs as pid 1 and handles the signal itself.
STOPSIGNAL SIGTERM
# --max-semi-space-size=8 --heap-growing-percent=30 --no-allocation-site-pretenuring: see the
# shebang of src/cli.ts (RSS at thousands of probes/s). --enable-experimental-regexp-engine: the
# linear-time engine that `expected_body` patterns run on (src/config/expected-body.ts).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=30", "--no-allocation-site-pretenuring", "--enable-experimental-regexp-engine", "/app/dist/cli.js"]
CMD ["run"]

# scan-backends in a container: `serve` (the dashboard over a watcher) by default, any command
# as arguments. Build:  docker build -t scan-backends .   (or podman build)
#
# Run it with --network host. In a bridge network the container sees only its own interface:
# the default scan would cover the bridge's 172.17.0.0/16 instead of the LAN, connects would
# come from a NAT address, and /proc/net/tcp (which servers a coordinator holds) would be the
# container's. With the host's network it scans the LAN the host is on, as the CLI does:
#   docker run -d --network host --init -v /etc/scan-backends:/etc/scan-backends:ro scan-backends \
#     serve --config /etc/scan-backends/rpc_backends.conf
# contrib/compose.yaml runs Redis and two watchers sharing it.

ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

# The build: the addon from source (a C++17 compiler, make, python3) and dist/ from lib/.
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends g++ make python3 \
  && rm -rf /var/lib/apt/lists/*
# node-gyp takes Node's headers from the image (/usr/local/include/node) instead of downloading.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: the steps below build the addon and dist/ once each, after the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY binding.gyp tsconfig.json tsconfig.build.json ./
COPY native ./native
COPY lib ./lib
# The addon as the npm package ships it (prebuilds/linux-<arch>/scan-backends.glibc.node), so
# the runtime needs no build/ and no compiler.
RUN npm run prebuild && npm run build:ts && chmod +x dist/cli.js
RUN npm prune --omit=dev --no-audit --no-fund

# The runtime: Node, the production dependencies, dist/ and the prebuilt addon; no compiler.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/prebuilds ./prebuilds
COPY contrib/container/healthcheck.mjs ./contrib/container/
RUN ln -s /app/dist/cli.js /usr/local/bin/scan-backends
# The node image's unprivileged user: scans need no privilege (connect() only, no raw sockets).
USER node
# serve's GET /healthz: 503 when the watcher's loop is stuck. HEALTHCHECK_URL for another
# --listen; a `watch` container has no HTTP server (compose turns the check off there).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/contrib/container/healthcheck.mjs"]
ENTRYPOINT ["scan-backends"]
CMD ["serve"]

# Gantry's container image: one image for both roles, `gantry serve` (the default command) and
# `gantry runtime`.
#
#   docker build -t gantry --build-arg VERSION=$(git describe --tags --always) \
#                          --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run -p 8080:8080 -p 8005:8005 -v gantry-data:/var/lib/gantry gantry
#   docker run gantry runtime --control-plane cp:8005 --cert … --key … --ca …
#
# The binary is static (CGO_ENABLED=0: SQLite and PostgreSQL drivers are pure Go), so the final
# stage is distroless "static": CA certificates, /etc/passwd with the nonroot user, and nothing
# else (no shell: the health check is the binary's own `gantry healthcheck`).

ARG GO_VERSION=1.26

# The builder runs on the build machine's platform and cross-compiles for the target's.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG COMMIT=
ARG TARGETOS
ARG TARGETARCH
# -buildvcs=false: .git is not in the build context; the version comes from the build args.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/gantry ./cmd/gantry
# The directories the image declares, owned by the nonroot user (65532): a named volume mounted
# there for the first time takes this ownership, so the process can write without root.
RUN mkdir -p /out/var/lib/gantry/data /out/var/lib/gantry/runtime /out/etc/gantry/certs

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="gantry" \
      org.opencontainers.image.description="Self-hosted control plane and runtime for fleets of API gateways" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/gantry /usr/local/bin/gantry
COPY --from=build --chown=65532:65532 /out/var/lib/gantry /var/lib/gantry
COPY --from=build --chown=65532:65532 /out/etc/gantry /etc/gantry
# Numeric, so that runtimes that check for a non-root user (Kubernetes runAsNonRoot) can verify it.
USER 65532:65532
# serve keeps its SQLite database in data/ (unused with GANTRY_DATABASE_URL); runtime keeps its
# node id and last configuration in runtime/. The healthcheck reads GANTRY_LISTEN and
# GANTRY_STATUS_LISTEN too, so it follows a changed port.
ENV GANTRY_DATA_DIR=/var/lib/gantry/data \
    GANTRY_CACHE_DIR=/var/lib/gantry/runtime
VOLUME ["/var/lib/gantry"]
# 8080 API, 8005 cluster listener (serve); 8000 HTTP proxy, 8443 HTTPS proxy, 8100 status (runtime).
EXPOSE 8080 8005 8000 8443 8100
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/gantry", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gantry"]
CMD ["serve"]

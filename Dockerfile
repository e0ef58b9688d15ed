# syntax=docker/dockerfile:1
#
# Images of pym, one target each (BuildKit, `docker build` ≥ 23 or `docker buildx`):
#
#   docker build --target operator -t <registry>/pym-operator:0.1.0 .
#   docker build --target hello    -t <registry>/hello:0.1.0 .
#
# Static musl binaries (BINARIES=compile, below) on distroless/static (no
# shell, no package manager, CA certificates and /etc/passwd only), running
# as uid/gid 65532.
# The `cargo build` lines below are checked by e2e/check-dockerfile and run
# as they are by CI (`e2e/check-dockerfile --build`), so they cannot rot.
#
# Where the binaries come from (ARG BINARIES):
#
#   compile   (default) cargo builds them in the Rust builder stage below
#             (stages builder, build-<target>-compile).
#   prebuilt  they are taken as they are from the build context named
#             `binaries`, a directory holding `pym-operator` and `hello`
#             (stages build-<target>-prebuilt); nothing is compiled and the
#             Rust image is not needed. Binaries built on a glibc host need
#             a glibc runtime image (e.g. gcr.io/distroless/cc-debian12:nonroot):
#
#   install -D -t dist target/release/pym-operator target/release/hello
#   docker build --target hello --build-arg BINARIES=prebuilt \
#     --build-context binaries=dist \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot .
#
# e2e/images builds both targets this way with buildah, from the binaries of
# `e2e/check-dockerfile --build` (the cargo lines below, run on the host) and
# a runtime image made from Debian packages (no registry is needed).
#
# Build arguments: BINARIES, RUNTIME_IMAGE (the final stages' base),
# RUST_VERSION, ALPINE_VERSION (builder), VERSION, REVISION, CREATED (OCI
# labels, e.g. --build-arg REVISION=$(git rev-parse HEAD)
# --build-arg CREATED=$(git log -1 --format=%cI)). VERSION defaults to pym's
# workspace version (root Cargo.toml; `e2e/set-version` writes it here and
# e2e/check-packages fails when it differs); e2e/images passes it too.

ARG RUST_VERSION=1.95.0
ARG ALPINE_VERSION=3.23
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG BINARIES=compile

# ---------------------------------------------------------------------------
# Builder: the workspace sources, the Rust toolchain for the musl host target.
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS builder
# musl-dev: crt files and headers for `ring`'s C code; the Alpine release is
# pinned by the base image tag.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
# Release binaries without the debuginfo the workspace profile keeps for
# profiling (symbols stay, so backtraces still name functions); no
# incremental state; paths in panics relative to the workspace.
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    RUSTFLAGS="--remap-path-prefix=/src=."
# Only what the build reads: the workspace manifest, the lock file and every
# workspace member (cargo loads all of them, with their test and bench
# targets, to build any one; e2e/check-dockerfile keeps this list in step
# with `members`). .dockerignore keeps target/, .git/ and the e2e run state
# and caches out of the context.
COPY Cargo.toml Cargo.lock ./
COPY runtime runtime
COPY cli cli
COPY operator operator
COPY examples examples
COPY e2e e2e

# BINARIES=compile: cargo in the builder. Dependencies are cached across
# builds in BuildKit cache mounts (the crates.io registry and the target
# directory), so a source change rebuilds only pym's own crates. The binary is
# copied out of the cache mount to /out.
FROM builder AS build-operator-compile
RUN --mount=type=cache,id=pym-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=pym-target,target=/src/target,sharing=locked \
    cargo build --locked --release -p pym-operator --bin pym-operator \
    && install -D -m 0555 target/release/pym-operator /out/pym-operator

FROM builder AS build-hello-compile
RUN --mount=type=cache,id=pym-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=pym-target,target=/src/target,sharing=locked \
    cargo build --locked --release -p hello --bin hello \
    && install -D -m 0555 target/release/hello /out/hello

# ---------------------------------------------------------------------------
# BINARIES=prebuilt: the binaries from the `binaries` build context
# (--build-context binaries=<dir>), to /out as the compile stages leave them.
# ---------------------------------------------------------------------------
FROM scratch AS build-operator-prebuilt
# `binaries` is a named build context, not a stage.
# hadolint ignore=DL3022
COPY --from=binaries --chmod=0555 pym-operator /out/pym-operator

FROM scratch AS build-hello-prebuilt
# hadolint ignore=DL3022
COPY --from=binaries --chmod=0555 hello /out/hello

# The stages the images copy /out from: one of the above, chosen by BINARIES
# (BuildKit and buildah build only the stages a target needs).
# hadolint ignore=DL3006
FROM build-operator-${BINARIES} AS build-operator
# hadolint ignore=DL3006
FROM build-hello-${BINARIES} AS build-hello

# ---------------------------------------------------------------------------
# hello: the example service (`hello serve` / `hello worker`, set by the operator).
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS hello
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="hello" \
      org.opencontainers.image.description="pym example service: signup with a welcome-email task" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/pym" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=build-hello /out/hello /usr/local/bin/hello
USER 65532:65532
# HTTP API (PYM_PORT) and worker health/metrics (PYM_WORKER_PORT).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/hello"]
CMD ["serve"]

# ---------------------------------------------------------------------------
# operator: pym-operator (the default target).
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS operator
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="pym-operator" \
      org.opencontainers.image.description="Kubernetes operator for pym services (PymService, pym.dev/v1alpha1)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/pym" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=build-operator /out/pym-operator /usr/local/bin/pym-operator
USER 65532:65532
# /metrics, /healthz, /readyz (--http-addr).
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/pym-operator"]

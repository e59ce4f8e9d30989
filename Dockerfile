# syntax=docker/dockerfile:1
#
# Keyward's container image (docs/operations.md, "Container image").
#
#   docker build -t keyward .                                  # the server (default target)
#   docker build --target protected-api -t keyward-api .       # examples/protected-api
#
# The default build links with cgo (CGO_ENABLED=1): Keyward's OpenSSL RS256
# signer loads libcrypto.so.3 at run time (dlopen; no OpenSSL headers are
# needed to build), so the runtime image is gcr.io/distroless/base-debian12,
# which has glibc and libssl3 (libcrypto.so.3), and not distroless/static.
# For a fully static image, with Go's own RS256 signer instead, build with
#
#   docker build --build-arg CGO_ENABLED=0 -t keyward:static .
#
# which builds a static binary and puts it on gcr.io/distroless/static-debian12.

ARG CGO_ENABLED=1
ARG GO_IMAGE=golang:1.26.10-bookworm

FROM ${GO_IMAGE} AS build
ARG CGO_ENABLED
ARG VERSION=dev
WORKDIR /src
ENV GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=${CGO_ENABLED} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keyward ./cmd/keyward \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/protected-api ./examples/protected-api

# The runtime base follows CGO_ENABLED: runtime-1 (glibc, libssl3) for the
# cgo binary, runtime-0 (no libc at all) for the static one.
FROM gcr.io/distroless/base-debian12:nonroot AS runtime-1
FROM gcr.io/distroless/static-debian12:nonroot AS runtime-0

# The example resource server of docker-compose.yml (pure Go: static).
FROM gcr.io/distroless/static-debian12:nonroot AS protected-api
COPY --from=build /out/protected-api /protected-api
USER nonroot
EXPOSE 9090
ENTRYPOINT ["/protected-api"]

# The server. It listens on all interfaces of the container (KEYWARD_ADDR);
# serve refuses plain HTTP beyond loopback, so it needs an https --issuer
# with --trusted-proxies (a TLS-terminating proxy) or --tls-cert/--tls-key.
FROM runtime-${CGO_ENABLED} AS keyward
COPY --from=build /out/keyward /keyward
USER nonroot
WORKDIR /home/nonroot
ENV KEYWARD_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/keyward", "healthcheck"]
ENTRYPOINT ["/keyward"]
CMD ["serve"]

# The worker, as a static binary in a small non-root image.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/worker ./worker \
 && mkdir -p /out/store

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /usr/local/bin/worker
# A new named volume takes this directory's owner: the nonroot user.
COPY --from=build --chown=65532:65532 /out/store /var/lib/recoveryvault/store
ENV RECOVERYVAULT_STORE=/var/lib/recoveryvault/store
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/worker"]

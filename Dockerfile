# The worker, as a static binary in a small non-root image; the image also
# holds the bucket tool the compose file's one-shot job runs.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bucket ./deploy/bucket \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/bucket /usr/local/bin/
# The worker's own files (the repositories' connection files): nothing of
# the data, which is in the bucket.
COPY --from=build --chown=65532:65532 /out/data /var/lib/recoveryvault
ENV RECOVERYVAULT_DATA_DIR=/var/lib/recoveryvault
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/worker"]

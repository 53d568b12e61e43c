# hookrelay: one static binary in a distroless image, running as non-root.
#
#   docker build -t hookrelay .
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... hookrelay relay
#
# The command (migrate, relay, worker, api, run) is the container's argument.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/hookrelay ./cmd/hookrelay

# distroless/static carries CA certificates (for HTTPS webhooks) and
# tzdata, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookrelay /usr/local/bin/hookrelay
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookrelay"]
CMD ["run"]

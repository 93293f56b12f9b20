# tally's container image, used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/tally ./cmd/tally

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/tally /usr/local/bin/tally
COPY examples/tally.yaml /etc/tally/tally.yaml
WORKDIR /var/lib/tally
EXPOSE 8080
ENTRYPOINT ["tally"]
CMD ["serve", "-config", "/etc/tally/tally.yaml"]

# A small image of holdfast that runs as a user of its own, not root.
#
#   docker build -t holdfast .
#   docker run --rm -p 8080:8080 -p 8081:8081 -v $PWD/examples/full.toml:/etc/holdfast/holdfast.toml:ro holdfast
#
# The config's [listen] addresses must be 0.0.0.0 (or [::]) to be reached from outside the
# container, and the admin listener must listen where the HEALTHCHECK asks (127.0.0.1:9090
# by default). Upgrade the binary by replacing the image: a container restarts; within a
# container `holdfast upgrade --pid-file /run/holdfast/holdfast.pid` works as anywhere.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p holdfast \
 && strip target/release/holdfast

FROM debian:bookworm-slim
# curl for the HEALTHCHECK; CA roots for TLS to origins and for ACME.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/holdfast --create-home holdfast \
 && install -d -o holdfast -g holdfast -m 0700 /run/holdfast
COPY --from=build /src/target/release/holdfast /usr/bin/holdfast
USER holdfast
WORKDIR /var/lib/holdfast
EXPOSE 8080 8443 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/holdfast"]
CMD ["run", "--config", "/etc/holdfast/holdfast.toml", "--pid-file", "/run/holdfast/holdfast.pid", "--log-format", "json"]

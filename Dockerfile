# The steward worker, built in one stage and run from a slim one.
#
#   docker build -t steward .
#   docker run --rm steward --help
#
# The build stage needs protoc (the SDK compiles Temporal's protos); the
# runtime stage needs every program steward's activities run: git (the
# sweep works on git checkouts), pg_dump and psql (the restore drill of a
# PostgreSQL state store), curl (the compose health check scrapes the
# metrics endpoint) and openssl (the compose file's one-shot makes the
# deployment's certificates with it). tests/tests/integration/deploy.rs keeps this
# list whole.
FROM rust:1.92-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin steward

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates curl openssl postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/steward --create-home steward
COPY --from=build /src/target/release/steward /usr/local/bin/steward
USER 10001
WORKDIR /var/lib/steward
ENV STEWARD_CONFIG=/etc/steward/steward.toml
ENTRYPOINT ["steward"]
CMD ["worker"]

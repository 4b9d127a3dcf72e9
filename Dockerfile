# Builds the control plane (`drover`) for compose.yaml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p control-plane

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/drover /usr/local/bin/drover
RUN mkdir -p /var/lib/drover && chown 65534:65534 /var/lib/drover
USER 65534
ENTRYPOINT []

# tfgate: nginx (Debian's) with the tfgate module, and tfgate-batcher, in one image.
#
#   docker build -t tfgate .
#   docker run -p 8080:8080 -e TFGATE_BACKEND=http://tf-serving:8500 tfgate
#
# The module is built against the very nginx package installed in the final image: both stages
# start from the same Debian release and install the same nginx/nginx-dev versions.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx nginx-dev libclang-dev build-essential pkg-config protobuf-compiler curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.88
WORKDIR /src
COPY . .
RUN scripts/build.sh \
 && dpkg-query -W -f='${Version}' nginx > /src/target/release/nginx.version

FROM debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/nginx.version /tmp/nginx.version
# Refuse to build an image whose nginx differs from the one the module was compiled against.
RUN test "$(dpkg-query -W -f='${Version}' nginx)" = "$(cat /tmp/nginx.version)"
COPY --from=build /src/target/release/libngx_http_tfgate_module.so /usr/lib/nginx/modules/ngx_http_tfgate_module.so
COPY --from=build /src/target/release/tfgate-batcher /usr/bin/tfgate-batcher
COPY nginx-conf/ /etc/tfgate/nginx/
COPY docker/ /etc/tfgate/docker/
RUN cp /etc/tfgate/nginx/modules-available/50-mod-http-tfgate.conf /etc/nginx/modules-enabled/ \
 && rm -f /etc/nginx/sites-enabled/default \
 && cp /etc/tfgate/docker/nginx-site.conf /etc/nginx/conf.d/tfgate.conf \
 && mkdir -p /run/tfgate
EXPOSE 8080
ENV TFGATE_BACKEND=http://127.0.0.1:8500
ENTRYPOINT ["/usr/bin/tini", "--", "/etc/tfgate/docker/entrypoint.sh"]

# nginx from Debian's package, for deploy/compose.yaml's load balancer (its configuration is mounted:
# deploy/nginx/nginx.conf). Built here by scripts/image.sh; elsewhere the official nginx image works too.
ARG BASE=debian:bookworm
FROM ${BASE}
RUN set -eu; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx curl; \
    rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

# Prometheus from Debian's package, for deploy/compose.yaml (its configuration is mounted:
# deploy/prometheus/prometheus.yml). Built here by scripts/image.sh; elsewhere prom/prometheus works too.
ARG BASE=debian:bookworm
FROM ${BASE}
RUN set -eu; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
    rm -rf /var/lib/apt/lists/*
USER prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2", \
     "--web.listen-address=127.0.0.1:9090"]

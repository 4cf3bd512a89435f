# Redis from Debian's redis-server package, for clusters that cannot pull the operator's default
# `redis:7.4-alpine`: set `spec.redis.image` (or ACTORMESH_OPERATOR_REDIS_IMAGE) to this image.
# Built by hack/images/build.sh on the same local base as the other images (no registry); the packages
# come from Debian's mirror, security updates included. See docs/images.md.
#
# It fits the operator's Redis StatefulSet (operator/actormesh_operator/builders/redis.py): the
# container runs `redis-server` with explicit args (`--dir /data --appendonly yes …`, no config file),
# the readiness probe runs `redis-cli ping`, both found through PATH; uid/gid 10001 with fsGroup 10001
# owns /data; the root filesystem is read-only (redis-server writes only under --dir, logs to stdout).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG DEBIAN_SECURITY_MIRROR=http://deb.debian.org/debian-security
# The local base's sources name only `bookworm main`; redis-server gets security fixes through
# bookworm-security. --no-install-recommends keeps redis-tools' optional extras out. The package's
# own user (`redis`), /etc/redis and /var/lib/redis stay unused: the operator passes everything as args.
RUN . /etc/os-release \
 && echo "deb ${DEBIAN_SECURITY_MIRROR} ${VERSION_CODENAME}-security main" >/etc/apt/sources.list.d/security.list \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
 && groupadd --gid 10001 actormesh \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin \
      --no-log-init actormesh \
 && mkdir -p /data && chown 10001:10001 /data && chmod 0770 /data \
 && redis-server --version && redis-cli --version
USER 10001:10001
ENV HOME=/tmp
WORKDIR /data
EXPOSE 6379
# The same server the StatefulSet runs, so `docker run actormesh/redis:<version>` works on its own.
ENTRYPOINT ["redis-server"]
CMD ["--dir", "/data", "--protected-mode", "no"]

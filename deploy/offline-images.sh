#!/bin/sh
# Builds the two base images deploy/compose.yaml needs from Debian packages, for a machine that
# reaches a Debian mirror and PyPI but not Docker Hub (see "Building without Docker Hub" in the
# README):
#
#   local/python:3.11-bookworm   Debian's Python 3.11 in a venv first on PATH (python, pip),
#                                standing in for python:3.11-slim
#   local/postgres:15            Debian's PostgreSQL 15, set up from POSTGRES_USER/_PASSWORD/_DB
#                                on its first start like the official postgres image
#
# Needs root (debootstrap, chroot) and debootstrap (apt-get install debootstrap). Then put
#   PYTHON_IMAGE=local/python:3.11-bookworm
#   POSTGRES_IMAGE=local/postgres:15
# in deploy/.env. DEBIAN_MIRROR overrides the mirror (default: deb.debian.org).
set -eu

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. A minimal Debian root file system, imported as the common base.
debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$mirror"
cat >"$work/rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
# Trust the certificate authorities the host added (an egress proxy's, for instance): pip in the
# image build must reach PyPI through the same network as the host.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null
fi
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . |
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - local/debian:bookworm
rm -rf "$work/rootfs"

# 2. Python: a venv, so `pip install` works as in the official image (Debian's own Python
#    refuses system-wide installs) and `python`/`pip` are the names the Dockerfile uses.
mkdir "$work/python"
cat >"$work/python/Dockerfile" <<'EOF'
FROM local/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python"]
EOF
docker build -t local/python:3.11-bookworm "$work/python"

# 3. PostgreSQL with a first-start setup: the user with its password, the database, password
#    logins over the network.
mkdir "$work/postgres"
cat >"$work/postgres/entrypoint.sh" <<'EOF'
#!/bin/sh
set -eu
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >"$pwfile"
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
EOF
cat >"$work/postgres/Dockerfile" <<'EOF'
FROM local/debian:bookworm
# No cluster from the package: the entrypoint creates one in the volume.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
EOF
chmod +x "$work/postgres/entrypoint.sh"
docker build -t local/postgres:15 "$work/postgres"

docker image ls --filter reference="local/*"

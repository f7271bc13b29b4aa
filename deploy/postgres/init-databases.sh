#!/bin/bash
# One role and one database per SQL service, each role owning only its own database.
#
# Runs once from /docker-entrypoint-initdb.d when the PostgreSQL volume is empty (and is safe to
# run again by hand: existing roles get their password reset, existing databases are kept).
# CONNECT is revoked from PUBLIC on every service database, so one service's credentials cannot
# even open another service's database; the owner keeps its own privileges.
#
# Passwords come from the environment: <SERVICE>_DB_PASSWORD (AUTH_DB_PASSWORD, ...), set in
# deploy/env/postgres.env. SWITCHYARD_SQL_SERVICES overrides the service list (space-separated).
# psql connects as $POSTGRES_USER over the default socket, or wherever PGHOST/PGPORT point.
set -euo pipefail

services=${SWITCHYARD_SQL_SERVICES:-auth profile content chat analytics}

for service in $services; do
    if [[ ! $service =~ ^[a-z][a-z0-9_]*$ ]]; then
        echo "init-databases: invalid service name '$service'" >&2
        exit 1
    fi
    var="${service^^}_DB_PASSWORD"
    password=${!var:-}
    if [[ -z $password ]]; then
        echo "init-databases: $var is not set; refusing to create role '$service' without a password" >&2
        exit 1
    fi
    # psql variables (:'name') quote the values, so passwords may contain any character.
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v role="$service" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'role') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'role') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'role', :'role') \gexec
SQL
    echo "init-databases: database '$service' owned by role '$service'"
done

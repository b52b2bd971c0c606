#!/usr/bin/env bash
# One database per service (DESIGN.md), each owned by a login role of that service alone.
#
# Run by the postgres image's entrypoint (/docker-entrypoint-initdb.d) on an empty data volume, as
# POSTGRES_USER over the local socket. For each service (claims, review, registry, sync):
#   - a role of the same name: LOGIN, not superuser, no CREATEDB / CREATEROLE / replication,
#     its password read from the Docker secret postgres_<service>_password;
#   - a database of the same name that the role OWNS (the public schema too: on PostgreSQL 15+ it
#     belongs to the database owner), so its migrations create and alter its tables;
#   - CONNECT on the database revoked from PUBLIC and granted to that role only, so a service
#     cannot even open another service's database. CONNECT on `postgres` and `template1` is
#     revoked from PUBLIC too: a service role connects to its own database and nowhere else.
# The superuser (POSTGRES_USER, secret postgres_password) stays for the operator.
#
# Idempotent: run again, it resets the passwords from the secrets, keeps the databases and hands
# every table, sequence, view and type of a database to its service's role. That is how a volume
# initialised before this script (databases owned by the superuser) is brought over, by hand:
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-init-databases.sh
# (see deploy/README.md). The services' URLs then name their own roles.
#
# Settings (environment): the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD; the entrypoint's
# socket by default) and CE_PG_SECRETS_DIR (default /run/secrets).
set -euo pipefail

secrets_dir=${CE_PG_SECRETS_DIR:-/run/secrets}
export PGUSER=${PGUSER:-${POSTGRES_USER:-postgres}}
export PGDATABASE=postgres

# -X: no ~/.psqlrc; -q: quiet; ON_ERROR_STOP: the first failing statement fails the script
run_sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

for service in claims review registry sync; do
  secret="$secrets_dir/postgres_${service}_password"
  if [ ! -s "$secret" ]; then
    echo "init-databases: $secret is missing or empty (deploy/make-secrets.sh writes it)" >&2
    exit 1
  fi
  password=$(cat "$secret")
  name=$service

  # Variables are interpolated by psql (:'x' a quoted literal, :"x" a quoted identifier), so a
  # password never needs escaping here; \gexec runs the statement the query before it builds.
  run_sql -v name="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I', :'name')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  INHERIT PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
ALTER DATABASE :"name" OWNER TO :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";

-- Inside the database: what an earlier superuser-run migration created becomes the role's.
\connect :"name"
SELECT format('ALTER SCHEMA public OWNER TO %I', :'name')
WHERE (SELECT nspowner FROM pg_namespace WHERE nspname = 'public')
      <> (SELECT oid FROM pg_roles WHERE rolname = 'pg_database_owner') \gexec
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
              n.nspname, c.relname, :'name')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :'name')
  -- a sequence owned by a column follows its table
  AND NOT (c.relkind = 'S' AND EXISTS (
    SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')
  )) \gexec
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, :'name')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r')
  AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = :'name') \gexec
SQL
  echo "init-databases: role and database $name"
done

# Nobody but the superuser connects to the maintenance databases (template0 refuses all already).
run_sql <<'SQL'
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
SQL

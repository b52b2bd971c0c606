-- One database per service (DESIGN.md: each service owns its own database).
-- Run once by the postgres image's entrypoint (/docker-entrypoint-initdb.d) on an empty data volume,
-- as POSTGRES_USER, who therefore owns these databases. Each service creates its own tables with
-- its Alembic migrations (`ce migrate SERVICE`, or on start unless CE_MIGRATE_ON_START=false).
CREATE DATABASE claims;
CREATE DATABASE review;
CREATE DATABASE registry;
CREATE DATABASE sync;

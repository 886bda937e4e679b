-- Stockpile's roles and database. The postgres image runs this once, as the superuser, when it
-- starts on an empty data volume (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
--
--   inventory_owner  owns the database and every table; `inventory db upgrade` connects as it.
--   inventory_app    what the API (and the worker) connect as. Its table privileges come from the
--                    migrations (inventory/db/append_only.py, grant_app_role): read and write,
--                    but never UPDATE, DELETE or TRUNCATE on the ledger and audit tables.
--
-- Passwords are read from the container's environment (psql 15's \getenv); there are no defaults.
\set ON_ERROR_STOP on
\getenv owner_password INVENTORY_OWNER_PASSWORD
\getenv app_password INVENTORY_APP_PASSWORD
\if :{?owner_password}
\else
    DO $$ BEGIN RAISE EXCEPTION 'INVENTORY_OWNER_PASSWORD is not set'; END $$;
\endif
\if :{?app_password}
\else
    DO $$ BEGIN RAISE EXCEPTION 'INVENTORY_APP_PASSWORD is not set'; END $$;
\endif

CREATE ROLE inventory_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE inventory_app LOGIN PASSWORD :'app_password';

CREATE DATABASE inventory OWNER inventory_owner;
REVOKE ALL ON DATABASE inventory FROM PUBLIC;
GRANT CONNECT ON DATABASE inventory TO inventory_app;

\connect inventory
-- PostgreSQL 15 already denies CREATE on public to PUBLIC; say so, so nothing else can make tables.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO inventory_app;

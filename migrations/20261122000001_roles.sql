-- Roles. Postgres roles are cluster-wide, so this runs safely against a cluster that already
-- has them (another database of the same cluster, a DBA who created them first, or many
-- test databases migrating at once).
--
--   owner (whoever runs `switchboard migrate`)  owns every table; used only for migrations.
--   switchboard_app     the services' role for tenant data. Not a superuser, no BYPASSRLS,
--                       owns nothing: every row it sees passes a tenant policy.
--   switchboard_system  the role for the few cross-tenant paths (key lookup by hash, the
--                       ledger's batched writes, the outbox relay). It has narrow grants and
--                       its own policies; it does not bypass RLS either.
--
-- Passwords are not set here (a migration is static text); see docs/architecture.md.

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['switchboard_app', 'switchboard_system'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT',
                    role_name);
            EXCEPTION
                -- Another session created it between our check and our CREATE.
                WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO switchboard_app, switchboard_system;

-- Account actions that belong to no tenant (signup, password reset, TOTP enrolment, erasure)
-- are audited too, in the same transaction as the change. The application role may insert
-- such a row only outside any tenant context, so a tenant-bound transaction can never write a
-- tenant-less row; nobody but the system role reads them (the SELECT policy stays
-- tenant-only), and nobody may update or delete any audit row.
CREATE POLICY audit_account_insert ON audit_log
    FOR INSERT TO switchboard_app
    WITH CHECK (tenant_id IS NULL
                AND (SELECT NULLIF(current_setting('app.tenant_id', true), '')) IS NULL);

-- The api pages through a tenant's audit log newest first by id (UUIDv7, so time-ordered).
CREATE INDEX audit_log_tenant_id_idx ON audit_log (tenant_id, id DESC);

-- `switchboard keys rotate` re-seals users' TOTP secrets as well as provider credentials.
GRANT UPDATE (totp_secret_ciphertext, totp_key_id, updated_at) ON users TO switchboard_system;

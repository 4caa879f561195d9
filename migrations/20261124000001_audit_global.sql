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

-- A budget's current period in a time zone: its first local day, and the instant it ends (NULL
-- for 'total', which never ends; its period starts 1970-01-01, as its rollup's does). One
-- definition for the gateway (enforcement) and the api (what a budget shows).
CREATE FUNCTION budget_period(period text, time_zone text, at_time timestamptz DEFAULT now())
    RETURNS TABLE (period_start date, period_end timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.period_start,
           CASE period
             WHEN 'daily' THEN (s.period_start + 1)::timestamp AT TIME ZONE time_zone
             WHEN 'monthly' THEN (s.period_start + interval '1 month') AT TIME ZONE time_zone
           END
      FROM (SELECT CASE period
                     WHEN 'daily' THEN (at_time AT TIME ZONE time_zone)::date
                     WHEN 'monthly' THEN date_trunc('month', at_time AT TIME ZONE time_zone)::date
                     ELSE DATE '1970-01-01'
                   END AS period_start) s
$$;
GRANT EXECUTE ON FUNCTION budget_period(text, text, timestamptz) TO switchboard_app, switchboard_system;

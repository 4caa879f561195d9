-- Webhooks: a tenant's HTTP endpoints for its events (budget alerts, finished runs, approvals
-- waiting for a decision), each delivery signed per Standard Webhooks, retried through the bus
-- and logged here. docs/architecture.md ("Webhooks") states the decisions.

CREATE TABLE webhooks (
    id                uuid NOT NULL PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url               text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description       text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- The event types it receives (budget.threshold_crossed, run.finished, approval.requested).
    events            text[] NOT NULL CHECK (cardinality(events) > 0),
    enabled           boolean NOT NULL DEFAULT true,
    -- The signing secret (`whsec_…`), sealed like provider credentials: AES-256-GCM under the
    -- current master key, the webhook's id as associated data. Shown once, at creation.
    secret_ciphertext bytea NOT NULL,
    secret_key_id     text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);

-- One row per webhook and event: the delivery log. Its id is the `webhook-id` header, the
-- same on every attempt, so receivers can deduplicate.
CREATE TABLE webhook_deliveries (
    id              uuid NOT NULL PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    webhook_id      uuid NOT NULL,
    -- The bus event it delivers (its envelope id): one delivery per webhook and event, however
    -- often the event is redelivered.
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    -- The exact bytes signed and sent.
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    response_status integer,
    last_error      text,
    -- The attempt this row waits for: a bus entry carrying another ticket is stale and skipped.
    -- Kept on a failed delivery, so replaying its dead letter tries once more.
    ticket          uuid,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (tenant_id, webhook_id, event_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
-- The log of one webhook, newest first.
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (tenant_id, webhook_id, id DESC);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhooks', 'webhook_deliveries'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I'
            ' USING (tenant_id = (SELECT NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid))'
            ' WITH CHECK (tenant_id = (SELECT NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid))',
            t);
    END LOOP;
END
$$;

-- The api manages webhooks and, inside the event's tenant, writes their deliveries.
GRANT SELECT, INSERT, UPDATE, DELETE ON webhooks, webhook_deliveries TO switchboard_app;

-- `switchboard keys rotate` re-seals every tenant's webhook secrets.
CREATE POLICY system_cross_tenant ON webhooks TO switchboard_system USING (true) WITH CHECK (true);
GRANT SELECT, UPDATE (secret_ciphertext, secret_key_id, updated_at) ON webhooks TO switchboard_system;

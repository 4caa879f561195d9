-- Webhooks: secret rotation with a grace period, and retention of the delivery log.
-- docs/architecture.md ("Webhooks") states the decisions.

-- Rotation: the secret replaced by `POST …/webhooks/{id}/rotate-secret` keeps signing beside
-- the new one until `previous_secret_expires_at` (24 hours later), so receivers can switch
-- without rejecting a delivery. Sealed like the current secret (the webhook's id is the
-- associated data); `switchboard keys rotate` re-seals it too.
ALTER TABLE webhooks
    ADD COLUMN previous_secret_ciphertext bytea,
    ADD COLUMN previous_secret_key_id     text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT webhooks_previous_secret_whole CHECK (
        (previous_secret_ciphertext IS NULL) = (previous_secret_key_id IS NULL)
        AND (previous_secret_ciphertext IS NULL) = (previous_secret_expires_at IS NULL)
    );
GRANT UPDATE (previous_secret_ciphertext, previous_secret_key_id) ON webhooks TO switchboard_system;

-- Retention (`WEBHOOK_DELIVERY_RETENTION_DAYS`): the api's sweep deletes finished deliveries
-- of every tenant as the system role. Its policy only ever shows that role finished rows, so
-- a delivery still pending or retrying cannot be deleted by the sweep whatever its query says.
CREATE POLICY system_retention ON webhook_deliveries TO switchboard_system
    USING (status IN ('succeeded', 'failed'));
GRANT SELECT (id, status, updated_at), DELETE ON webhook_deliveries TO switchboard_system;
-- The sweep's scan: finished deliveries by their last change.
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at)
    WHERE status IN ('succeeded', 'failed');

-- The price book becomes editable by platform admins (REST `/api/v1/admin/prices`,
-- `switchboard prices set|import`), who act through the application role. The book stays
-- append-only: the role may add a row, never change or remove one. And it may add only a row
-- that starts now or later (`now()` is the transaction's start), so a new price can never
-- reprice a call already made: the ledger checks each event against the price in force at
-- the event's time, and that answer must not change after the fact. Migrations (the owner,
-- which row-level security does not bind) still seed prices with past dates.
-- docs/architecture.md ("The price book") states the decision.
GRANT INSERT ON model_prices TO switchboard_app;

ALTER TABLE model_prices ENABLE ROW LEVEL SECURITY;
-- Everyone who may read the table (the api, the gateway's and the ledger's system role) reads
-- every row: prices are global, not a tenant's.
CREATE POLICY model_prices_read ON model_prices FOR SELECT USING (true);
CREATE POLICY model_prices_add_from_now ON model_prices FOR INSERT TO switchboard_app
    WITH CHECK (effective_from >= now());

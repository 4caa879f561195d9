-- What "explain this charge" shows for a usage row: the gateway's request id, every provider
-- entry tried with its outcome, and what the gateway held against the budgets at admission
-- (the estimate) next to what the call cost. Rows recorded before have none of these (NULL,
-- and no hops). Constant defaults: Postgres adds the columns without rewriting the table.
ALTER TABLE usage_ledger
    ADD COLUMN request_id      text CHECK (length(request_id) <= 200),
    ADD COLUMN hops            jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN reserved_micros bigint CHECK (reserved_micros >= 0);

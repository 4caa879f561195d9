-- The ledger: a monthly-partitioned usage_ledger, budget rollups that also cover whole-life
-- ("total") budgets, the record of alerts already sent, and a seeded price book.

-- ---------------------------------------------------------------------------------------------
-- usage_ledger becomes partitioned by month of occurred_at, so retention drops whole
-- partitions instead of deleting rows. Nothing wrote to it before the ledger existed, so it
-- is recreated rather than migrated.
DROP TABLE usage_ledger;

CREATE TABLE usage_ledger (
    event_id            uuid NOT NULL,
    tenant_id           uuid NOT NULL,
    workspace_id        uuid,
    api_key_id          uuid,
    run_id              uuid,
    provider            text NOT NULL,
    model               text NOT NULL,
    input_tokens        bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    cached_input_tokens bigint NOT NULL DEFAULT 0 CHECK (cached_input_tokens >= 0),
    output_tokens       bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_micros         bigint NOT NULL CHECK (cost_micros >= 0),
    status              text NOT NULL,
    latency_ms          integer,
    occurred_at         timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    -- The partition key must be part of every unique key. An event's occurred_at never
    -- changes across redeliveries, so (event_id, occurred_at) still makes recording idempotent.
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX usage_ledger_tenant_time_idx ON usage_ledger (tenant_id, occurred_at);

ALTER TABLE usage_ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_ledger
    USING (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid));
CREATE POLICY system_cross_tenant ON usage_ledger TO switchboard_system USING (true) WITH CHECK (true);
GRANT SELECT ON usage_ledger TO switchboard_app;
GRANT SELECT, INSERT ON usage_ledger TO switchboard_system;

-- Partitions are created and dropped by the owner, on the ledger's behalf, through these two
-- functions (SECURITY DEFINER, with a fixed search_path). Partitions get no grants: they are
-- reached only through usage_ledger, whose policies apply.
CREATE FUNCTION usage_ledger_ensure_partition(month date) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name text := format('usage_ledger_y%sm%s', to_char(first_day, 'YYYY'), to_char(first_day, 'MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        -- Months are UTC months; the bounds are instants, whatever the session's time zone.
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_ledger FOR VALUES FROM (%L) TO (%L)',
                       name, first_day::timestamp AT TIME ZONE 'UTC',
                       (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END IF;
    RETURN name;
END
$$;

-- Drops every partition that ends on or before `cutoff`; returns their names.
CREATE FUNCTION usage_ledger_drop_partitions_before(cutoff date) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'usage_ledger'::regclass
    LOOP
        -- Bounds read "FOR VALUES FROM ('…') TO ('…')"; the upper one is the second literal.
        IF (regexp_match(part.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz <= (cutoff::timestamp AT TIME ZONE 'UTC') THEN
            EXECUTE format('ALTER TABLE usage_ledger DETACH PARTITION %I', part.relname);
            EXECUTE format('DROP TABLE %I', part.relname);
            RETURN NEXT part.relname;
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION usage_ledger_ensure_partition(date), usage_ledger_drop_partitions_before(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION usage_ledger_ensure_partition(date), usage_ledger_drop_partitions_before(date) TO switchboard_system;

-- The current month and the next two exist from the start; the ledger keeps it that way.
SELECT usage_ledger_ensure_partition((date_trunc('month', now()) + make_interval(months => m))::date)
  FROM generate_series(0, 2) AS m;

-- ---------------------------------------------------------------------------------------------
-- Rollups: a 'total' granularity (period_start 1970-01-01) for whole-life budgets, and a
-- revision that grows with every change, so that the Redis mirror of a budget's spend is only
-- ever replaced by a newer value, whichever ledger instance or reconciler writes it.
ALTER TABLE spend_rollups DROP CONSTRAINT spend_rollups_granularity_check;
ALTER TABLE spend_rollups ADD CONSTRAINT spend_rollups_granularity_check CHECK (granularity IN ('day', 'month', 'total'));
CREATE SEQUENCE spend_rollups_revision_seq;
ALTER TABLE spend_rollups ADD COLUMN revision bigint NOT NULL DEFAULT nextval('spend_rollups_revision_seq');
GRANT USAGE ON SEQUENCE spend_rollups_revision_seq TO switchboard_system;
-- Every batch updates the same few rollup rows; free space on each page lets those updates
-- stay HOT (no index churn) between vacuums.
ALTER TABLE spend_rollups SET (fillfactor = 50);

-- ---------------------------------------------------------------------------------------------
-- One row per budget, period and threshold whose alert was sent: an alert is never repeated
-- inside its period. Written in the same transaction as the spend that crossed it.
CREATE TABLE budget_alerts_sent (
    tenant_id    uuid NOT NULL,
    budget_id    uuid NOT NULL,
    period_start date NOT NULL,
    threshold    smallint NOT NULL,
    spent_micros bigint NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, budget_id, period_start, threshold)
);
ALTER TABLE budget_alerts_sent ENABLE ROW LEVEL SECURITY;
ALTER TABLE budget_alerts_sent FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON budget_alerts_sent
    USING (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid));
CREATE POLICY system_cross_tenant ON budget_alerts_sent TO switchboard_system USING (true) WITH CHECK (true);
GRANT SELECT ON budget_alerts_sent TO switchboard_app;
GRANT SELECT, INSERT ON budget_alerts_sent TO switchboard_system;

-- The ledger publishes its alerts through the outbox.
GRANT INSERT ON outbox TO switchboard_system;

-- ---------------------------------------------------------------------------------------------
-- The price book: public list prices (micro-dollars per million tokens) and mock-llm's models,
-- priced like the models they stand in for. New prices are new rows with a later
-- effective_from; old rows stay, so history is priced as it was.
INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok, cached_input_micros_per_mtok, output_micros_per_mtok) VALUES
    ('openai',    'gpt-4o',                 '2024-10-01', 2500000, 1250000, 10000000),
    ('openai',    'gpt-4o-mini',            '2024-07-18',  150000,   75000,   600000),
    ('openai',    'text-embedding-3-small', '2024-01-25',   20000,   20000,        0),
    ('anthropic', 'claude-sonnet-4',        '2025-05-22', 3000000,  300000, 15000000),
    ('anthropic', 'claude-3-5-haiku',       '2024-11-04',  800000,   80000,  4000000),
    ('gemini',    'gemini-2.0-flash',       '2025-02-05',  100000,   25000,   400000),
    ('openai',    'mock-gpt-4o',            '2024-01-01', 2500000, 1250000, 10000000),
    ('openai',    'mock-gpt-4o-mini',       '2024-01-01',  150000,   75000,   600000),
    ('anthropic', 'mock-claude-sonnet',     '2024-01-01', 3000000,  300000, 15000000),
    ('gemini',    'mock-gemini-flash',      '2024-01-01',  100000,   25000,   400000),
    ('openai',    'mock-embedding',         '2024-01-01',   20000,   20000,        0);

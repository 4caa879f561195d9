-- The core schema.
--
-- Tenancy invariants (tested in services/shared/db/tests/it/isolation.rs):
--   * every table with a tenant_id column has ROW LEVEL SECURITY enabled AND forced (forced
--     so that even the table owner is subject to it), a policy comparing tenant_id with the
--     transaction-local setting app.tenant_id, and an index whose first column is tenant_id;
--   * the policy reads the setting through a scalar subquery, so Postgres evaluates it once
--     per query (an InitPlan) rather than once per row;
--   * NULLIF(…, '') matters: after a transaction that set app.tenant_id ends, the setting
--     reads as '' (not NULL) on that pooled connection, and ''::uuid would raise an error
--     instead of matching nothing;
--   * references between tenant tables are composite (tenant_id, id) foreign keys, so a row
--     can never point at another tenant's row.
--
-- Money columns are bigint micro-dollars. Timestamps are timestamptz.

-- ---------------------------------------------------------------------------------------------
-- Tenants. The tenant's own row is visible only inside its own context (policy on id).
CREATE TABLE tenants (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug             text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    -- IANA zone; calendar budget periods roll over at local midnight.
    time_zone        text NOT NULL DEFAULT 'UTC',
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- When Redis is unreachable, budgets fail closed unless the tenant opts out.
    budget_fail_open boolean NOT NULL DEFAULT false,
    -- Prompts are never logged unless the tenant opts in.
    prompt_logging   boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid));

-- ---------------------------------------------------------------------------------------------
-- Users are global: one login, many tenants. Not tenant data, so no RLS; what a tenant may
-- see of a user goes through memberships.
CREATE TABLE users (
    id                     uuid PRIMARY KEY,
    email                  text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    -- Argon2id PHC string; NULL for users who have not set a password (invited).
    password_hash          text,
    display_name           text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    is_platform_admin      boolean NOT NULL DEFAULT false,
    email_verified_at      timestamptz,
    -- TOTP secret, encrypted like provider credentials (key id beside the ciphertext).
    totp_secret_ciphertext bytea,
    totp_key_id            text,
    totp_enabled_at        timestamptz,
    -- GDPR erasure pseudonymises the row instead of deleting it, so ledger totals stay true.
    erased_at              timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
-- E-mail addresses are unique whatever their case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- ---------------------------------------------------------------------------------------------
-- Membership carries the role. The primary key leads with tenant_id (the RLS index).
CREATE TABLE memberships (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
-- "Which tenants is this user in" (login, /me) is a system-role lookup by user.
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

-- ---------------------------------------------------------------------------------------------
CREATE TABLE workspaces (
    id         uuid NOT NULL,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- ---------------------------------------------------------------------------------------------
-- Gateway API keys. The secret is shown once and stored only as its SHA-256.
CREATE TABLE api_keys (
    id             uuid NOT NULL PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    workspace_id   uuid,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The visible start of the key (`sb_live_ab12`), so people can tell keys apart.
    prefix         text NOT NULL,
    key_hash       bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    -- Empty means every model the tenant's providers serve.
    allowed_models text[] NOT NULL DEFAULT '{}',
    rpm_limit      integer CHECK (rpm_limit > 0),
    tpm_limit      integer CHECK (tpm_limit > 0),
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz,
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES workspaces (tenant_id, id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------------------------------------
-- Provider entries (bring your own AI key). The secret is AES-256-GCM ciphertext with the id
-- of the key that encrypted it; an entry without a secret (a local upstream such as mock-llm
-- or Ollama) has neither.
CREATE TABLE provider_credentials (
    id                uuid NOT NULL PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The wire format spoken upstream.
    provider          text NOT NULL CHECK (provider IN ('openai', 'anthropic', 'gemini')),
    base_url          text NOT NULL,
    -- Model names this entry serves; routing tries entries in ascending priority.
    models            text[] NOT NULL DEFAULT '{}',
    priority          integer NOT NULL DEFAULT 0,
    enabled           boolean NOT NULL DEFAULT true,
    secret_ciphertext bytea,
    secret_key_id     text,
    -- The only part of the secret any API returns.
    secret_last4      text CHECK (length(secret_last4) <= 4),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK ((secret_ciphertext IS NULL) = (secret_key_id IS NULL))
);

-- ---------------------------------------------------------------------------------------------
-- The price book is global and effective-dated: the price of a call is the row with the
-- latest effective_from at or before the call.
CREATE TABLE model_prices (
    provider                     text NOT NULL,
    model                        text NOT NULL,
    effective_from               timestamptz NOT NULL,
    -- Micro-dollars per million tokens.
    input_micros_per_mtok        bigint NOT NULL CHECK (input_micros_per_mtok >= 0),
    cached_input_micros_per_mtok bigint NOT NULL CHECK (cached_input_micros_per_mtok >= 0),
    output_micros_per_mtok       bigint NOT NULL CHECK (output_micros_per_mtok >= 0),
    PRIMARY KEY (provider, model, effective_from)
);

-- ---------------------------------------------------------------------------------------------
-- Budgets: a scope (the tenant, or one workspace, key or run in it), a period and a limit.
CREATE TABLE budgets (
    id           uuid NOT NULL PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope        text NOT NULL CHECK (scope IN ('tenant', 'workspace', 'api_key', 'agent_run')),
    -- NULL for the tenant scope; otherwise the workspace, key or run id.
    scope_id     uuid,
    period       text NOT NULL CHECK (period IN ('daily', 'monthly', 'total')),
    limit_micros bigint NOT NULL CHECK (limit_micros >= 0),
    -- Percentages of the limit at which an alert is sent.
    thresholds   smallint[] NOT NULL DEFAULT '{50,80,100}',
    action       text NOT NULL DEFAULT 'block' CHECK (action IN ('block', 'alert')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'tenant') = (scope_id IS NULL)),
    -- One budget per scope and period.
    UNIQUE NULLS NOT DISTINCT (tenant_id, scope, scope_id, period)
);

-- ---------------------------------------------------------------------------------------------
-- One row per usage event, written only by the ledger (system role), idempotent by event id.
-- No foreign keys: a key or workspace deleted later must not rewrite history.
CREATE TABLE usage_ledger (
    event_id            uuid NOT NULL PRIMARY KEY,
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
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_ledger_tenant_time_idx ON usage_ledger (tenant_id, occurred_at);

-- Spend per scope and calendar period (in the tenant's time zone), kept by the ledger in the
-- same transaction as the ledger rows. For the tenant scope, scope_id is the tenant id.
CREATE TABLE spend_rollups (
    tenant_id     uuid NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('tenant', 'workspace', 'api_key', 'agent_run')),
    scope_id      uuid NOT NULL,
    granularity   text NOT NULL CHECK (granularity IN ('day', 'month')),
    period_start  date NOT NULL,
    spent_micros  bigint NOT NULL DEFAULT 0,
    request_count bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, scope, scope_id, granularity, period_start)
);

-- ---------------------------------------------------------------------------------------------
-- Agent runs, their event log and their approvals.
CREATE TABLE agent_runs (
    id           uuid NOT NULL PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    workspace_id uuid,
    agent        text NOT NULL,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN
                     ('queued', 'running', 'waiting_approval', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    input        jsonb NOT NULL DEFAULT '{}',
    output       jsonb,
    error        text,
    iterations   integer NOT NULL DEFAULT 0,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES workspaces (tenant_id, id) ON DELETE SET NULL (workspace_id)
);
CREATE INDEX agent_runs_tenant_created_idx ON agent_runs (tenant_id, created_at DESC);

CREATE TABLE agent_events (
    id         uuid NOT NULL PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    run_id     uuid NOT NULL,
    -- Position in the run; unique so a redelivered event is recorded once.
    seq        integer NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE approvals (
    id           uuid NOT NULL PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    tool         text NOT NULL,
    arguments    jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    decided_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at   timestamptz,
    reason       text,
    FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX approvals_tenant_status_idx ON approvals (tenant_id, status, requested_at);

-- ---------------------------------------------------------------------------------------------
-- The audit log is append-only for the services: the application role may insert and read,
-- never update or delete. Platform-level actions have no tenant and are visible only to the
-- system role.
CREATE TABLE audit_log (
    id            uuid NOT NULL PRIMARY KEY,
    tenant_id     uuid,
    actor_user_id uuid,
    action        text NOT NULL,
    target_type   text,
    target_id     text,
    ip            inet,
    user_agent    text,
    request_id    text,
    details       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created_at DESC);

-- ---------------------------------------------------------------------------------------------
-- Refresh tokens belong to users (global), stored hashed. A family is one login's chain of
-- rotations: presenting a token that was already used revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid NOT NULL PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- ---------------------------------------------------------------------------------------------
-- The transactional outbox: a row written in the same transaction as a domain change, then
-- published to its stream by the relay (system role) in id order, at least once.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    stream       text NOT NULL,
    event_id     uuid NOT NULL UNIQUE,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_tenant_idx ON outbox (tenant_id, created_at);
-- The relay's queue: small, because published rows drop out of it.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- ---------------------------------------------------------------------------------------------
-- Row-level security on every table with tenant_id: enabled, forced, one isolation policy.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['memberships', 'workspaces', 'api_keys', 'provider_credentials',
                             'budgets', 'usage_ledger', 'spend_rollups', 'agent_runs',
                             'agent_events', 'approvals', 'audit_log', 'outbox'] LOOP
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

-- The system role sees every row of the tables it works across; its grants below say what it
-- may do with them.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'memberships', 'api_keys', 'provider_credentials',
                             'budgets', 'usage_ledger', 'spend_rollups', 'outbox'] LOOP
        EXECUTE format('CREATE POLICY system_cross_tenant ON %I TO switchboard_system USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Grants. Nothing is granted that a service does not use.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenants, memberships, workspaces, api_keys, provider_credentials, budgets,
    agent_runs, agent_events, approvals
    TO switchboard_app;
GRANT SELECT, INSERT, UPDATE ON users, refresh_tokens TO switchboard_app;
-- Append-only for the services.
GRANT SELECT, INSERT ON audit_log, outbox TO switchboard_app;
-- Written by the ledger (system role) only; tenants read their own.
GRANT SELECT ON usage_ledger, spend_rollups, model_prices TO switchboard_app;

-- Key lookup by hash (gateway), membership listing (login, /me).
GRANT SELECT ON tenants, memberships, users, api_keys, budgets, model_prices TO switchboard_system;
GRANT UPDATE (last_used_at) ON api_keys TO switchboard_system;
-- `switchboard keys rotate` re-encrypts every tenant's credentials.
GRANT SELECT, UPDATE (secret_ciphertext, secret_key_id, updated_at) ON provider_credentials TO switchboard_system;
-- The ledger's batched writes.
GRANT SELECT, INSERT ON usage_ledger TO switchboard_system;
GRANT SELECT, INSERT, UPDATE ON spend_rollups TO switchboard_system;
-- The outbox relay.
GRANT SELECT, UPDATE (published_at) ON outbox TO switchboard_system;

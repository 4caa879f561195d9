-- Agents, and the durable state of their runs: the step log, approvals bound to one exact tool
-- call, and the lease under which one worker at a time holds a run. docs/architecture.md
-- ("Agents") states the invariants these tables keep.

-- What a run executes. Defaults that are NULL here come from the worker's configuration
-- (MAX_AGENT_ITERATIONS, AGENT_TIMEOUT_SECONDS) when the run is created.
CREATE TABLE agents (
    id              uuid NOT NULL PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    model           text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    instructions    text NOT NULL DEFAULT '',
    -- The tools the agent may use, and those of them whose every call waits for a person.
    tools           text[] NOT NULL DEFAULT '{}',
    approval_tools  text[] NOT NULL DEFAULT '{}' CHECK (approval_tools <@ tools),
    max_iterations  integer CHECK (max_iterations BETWEEN 1 AND 1000),
    timeout_seconds integer CHECK (timeout_seconds BETWEEN 1 AND 604800),
    -- A budget for each run of this agent, in micro-dollars (a run may override it).
    budget_micros   bigint CHECK (budget_micros >= 0),
    -- Agents of one team share its health report and its rate limit on model calls.
    team            text CHECK (team ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);
CREATE INDEX agents_tenant_team_idx ON agents (tenant_id, team);

-- A run: its agent, its limits (copied at creation, so editing the agent never changes a run
-- in flight), its lease, and its event sequence.
ALTER TABLE agent_runs
    ADD COLUMN agent_id            uuid,
    ADD COLUMN max_iterations      integer NOT NULL DEFAULT 25 CHECK (max_iterations > 0),
    ADD COLUMN timeout_seconds     integer NOT NULL DEFAULT 300 CHECK (timeout_seconds > 0),
    ADD COLUMN budget_micros       bigint CHECK (budget_micros >= 0),
    -- The worker holding the run and until when; another worker may take it after that.
    ADD COLUMN lease_owner         text,
    ADD COLUMN lease_expires_at    timestamptz,
    ADD COLUMN cancel_requested_at timestamptz,
    -- Why a run ended failed or timed_out (max_iterations, timeout, approval_expired, …).
    ADD COLUMN error_code          text,
    -- The last sequence number given to one of its events (agent_events.seq).
    ADD COLUMN last_seq            integer NOT NULL DEFAULT 0,
    ADD FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE SET NULL (agent_id);
-- The runs list: newest first, filtered by status or agent.
CREATE INDEX agent_runs_tenant_id_idx ON agent_runs (tenant_id, id DESC);
CREATE INDEX agent_runs_tenant_status_idx ON agent_runs (tenant_id, status, id DESC);
CREATE INDEX agent_runs_tenant_agent_idx ON agent_runs (tenant_id, agent_id, id DESC);
-- The sweeper's question: which unfinished runs has nobody held for a while?
CREATE INDEX agent_runs_unfinished_idx ON agent_runs (updated_at)
    WHERE status IN ('queued', 'running');

-- The durable step log. A model step records the assistant's message; a tool step records one
-- tool call and moves proposed → approved → started → finished (or rejected, or uncertain when
-- a crash left it started but not finished and it may not be repeated silently). Its id is the
-- idempotency key handed to the tool.
CREATE TABLE agent_steps (
    id           uuid NOT NULL PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    step         integer NOT NULL CHECK (step > 0),
    kind         text NOT NULL CHECK (kind IN ('model', 'tool')),
    state        text NOT NULL CHECK (state IN
                     ('proposed', 'approved', 'started', 'finished', 'rejected', 'uncertain')),
    -- model: the assistant message as the model sent it.
    message      jsonb,
    -- tool: the call, the model's id for it, and sha256 of the tool and its canonical arguments.
    tool         text,
    arguments    jsonb,
    call_hash    text,
    tool_call_id text,
    result       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (tenant_id, run_id, step),
    UNIQUE (tenant_id, id),
    CHECK ((kind = 'tool') = (tool IS NOT NULL AND arguments IS NOT NULL AND call_hash IS NOT NULL)),
    FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs (tenant_id, id) ON DELETE CASCADE
);

-- An approval waits for a person: a tool call (bound to its step and hash, so the arguments
-- approved are the arguments executed) or a run budget that ran out.
ALTER TABLE approvals
    ADD COLUMN kind          text NOT NULL DEFAULT 'tool' CHECK (kind IN ('tool', 'budget')),
    ADD COLUMN step_id       uuid,
    ADD COLUMN call_hash     text,
    ADD COLUMN requested_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    -- budget: the run's budget when it parked, and the new one an approval sets.
    ADD COLUMN budget_micros bigint CHECK (budget_micros >= 0),
    ADD FOREIGN KEY (tenant_id, step_id) REFERENCES agent_steps (tenant_id, id) ON DELETE CASCADE,
    ADD CHECK ((kind = 'tool') = (step_id IS NOT NULL AND call_hash IS NOT NULL));
-- A run waits for at most one decision at a time.
CREATE UNIQUE INDEX approvals_one_pending_idx ON approvals (tenant_id, run_id) WHERE status = 'pending';
CREATE INDEX approvals_tenant_id_idx ON approvals (tenant_id, id DESC);
-- The expiry sweep.
CREATE INDEX approvals_pending_expiry_idx ON approvals (expires_at) WHERE status = 'pending';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['agents', 'agent_steps'] LOOP
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

GRANT SELECT, INSERT, UPDATE, DELETE ON agents, agent_steps TO switchboard_app;

-- The agent-worker's sweeper works across tenants as the system role: it finds runs whose
-- lease ran out or that were approved and not resumed, and approvals past their expiry, and
-- puts a job for each in the outbox. It reads and re-queues; the run itself is always worked
-- on in the run's tenant context.
CREATE POLICY system_cross_tenant ON agent_runs TO switchboard_system USING (true) WITH CHECK (true);
CREATE POLICY system_cross_tenant ON approvals TO switchboard_system USING (true) WITH CHECK (true);
-- The worker's team health report counts runs and step times across tenants.
CREATE POLICY system_cross_tenant ON agents TO switchboard_system USING (true) WITH CHECK (true);
CREATE POLICY system_cross_tenant ON agent_steps TO switchboard_system USING (true) WITH CHECK (true);
GRANT SELECT ON agent_runs, approvals, agents, agent_steps TO switchboard_system;
-- Each worker renews the leases of all the runs it holds in one statement.
GRANT UPDATE (lease_expires_at) ON agent_runs TO switchboard_system;

-- mock-llm's scripted agent model (`mock-agent`), priced like mock-gpt-4o-mini so that run
-- budgets bite in the demo and the tests as they would on a real model.
INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok,
                          cached_input_micros_per_mtok, output_micros_per_mtok)
VALUES ('openai', 'mock-agent', '2024-01-01', 150000, 75000, 600000)
ON CONFLICT DO NOTHING;

// Runs: a page at a time from the server, filtered by status, agent and "waiting for approval
// longer than…", and a form to start one. Each run links to its live view (Run.tsx).
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, sendJson, withQuery } from "../lib/api";
import { usd } from "../lib/format";
import { navigate } from "../lib/router";
import { tenant, tenantPath } from "../lib/session";
import { formatInstant } from "../lib/time";
import { ErrorBox, FieldMessage, Pager } from "./parts";

export interface RunView {
  id: string;
  agent_id: string | null;
  agent: string;
  status: string;
  input: unknown;
  output: unknown;
  error: string | null;
  error_code: string | null;
  iterations: number;
  max_iterations: number;
  budget_micros: number | null;
  cost_micros: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

interface Page {
  items: RunView[];
  next_cursor: string | null;
}

interface Agent {
  id: string;
  name: string;
}

export const STATUSES: Record<string, string> = {
  queued: "Queued",
  running: "Running",
  waiting_approval: "Waiting for approval",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  timed_out: "Timed out",
};

const PAGE_SIZE = 25;

function StartRun({ agents }: { agents: Agent[] }) {
  const agent = useSignal("");
  const input = useSignal("");
  const error = useSignal<ApiError | null>(null);
  async function submit(e: Event) {
    e.preventDefault();
    error.value = null;
    try {
      const run = await sendJson<RunView>("POST", tenantPath("/runs"), { agent_id: agent.value || agents[0]?.id, input: input.value });
      navigate(`/runs/${run.id}`);
    } catch (err) {
      error.value = err instanceof ApiError ? err : new ApiError(0, "network", String(err));
    }
  }
  const err = error.value;
  return (
    <section class="card" aria-labelledby="start-run">
      <h2 id="start-run">Start a run</h2>
      <form onSubmit={submit}>
        <label for="run-agent">Agent to run</label>
        <select id="run-agent" value={agent.value} onChange={(e) => (agent.value = (e.target as HTMLSelectElement).value)}>
          {agents.map((a) => (
            <option key={a.id} value={a.id}>
              {a.name}
            </option>
          ))}
        </select>
        <label for="run-input">Input</label>
        <textarea
          id="run-input"
          rows={4}
          value={input.value}
          onInput={(e) => (input.value = (e.target as HTMLTextAreaElement).value)}
          aria-invalid={err?.field("input") ? true : undefined}
          aria-describedby={err?.field("input") ? "run-input-error" : undefined}
        />
        <FieldMessage id="run-input-error" error={err} field="input" />
        <div>
          <button type="submit">Start run</button>
        </div>
        {err && !err.field("input") && <ErrorBox error={err} />}
      </form>
    </section>
  );
}

export function Runs() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const status = useSignal("");
  const agent = useSignal("");
  const waitingInput = useSignal("");
  const waiting = useSignal("");
  const agents = useSignal<Agent[]>([]);
  const cursors = useSignal<string[]>([""]);
  const page = useSignal<Page | null>(null);
  const error = useSignal<ApiError | null>(null);

  useEffect(() => {
    getJson<Agent[]>(tenantPath("/agents"))
      .then((a) => (agents.value = a))
      .catch(() => undefined);
  }, []);

  const cursor = cursors.value[cursors.value.length - 1];
  useEffect(() => {
    let stale = false;
    const minutes = waiting.value === "" ? undefined : Math.round(Number(waiting.value) * 60);
    getJson<Page>(
      withQuery(tenantPath("/runs"), {
        status: status.value,
        agent_id: agent.value,
        waiting_longer_than_seconds: minutes,
        limit: PAGE_SIZE,
        cursor,
      }),
    )
      .then((p) => {
        if (!stale) {
          page.value = p;
          error.value = null;
        }
      })
      .catch((e) => (error.value = e instanceof ApiError ? e : null));
    return () => {
      stale = true;
    };
  }, [status.value, agent.value, waiting.value, cursor]);

  const restart = () => (cursors.value = [""]);
  const p = page.value;
  const err = error.value;
  return (
    <>
      <h1>Runs</h1>
      {agents.value.length > 0 && <StartRun agents={agents.value} />}
      <form
        class="filters"
        role="search"
        aria-label="Filter runs"
        onSubmit={(e) => {
          e.preventDefault();
          waiting.value = waitingInput.value.trim();
          restart();
        }}
      >
        <div>
          <label for="runs-status">Status</label>
          <select
            id="runs-status"
            value={status.value}
            onChange={(e) => ((status.value = (e.target as HTMLSelectElement).value), restart())}
          >
            <option value="">Any</option>
            {Object.entries(STATUSES).map(([v, t]) => (
              <option key={v} value={v}>
                {t}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="runs-agent">Agent</label>
          <select id="runs-agent" value={agent.value} onChange={(e) => ((agent.value = (e.target as HTMLSelectElement).value), restart())}>
            <option value="">Any</option>
            {agents.value.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="runs-waiting">Waiting for approval longer than (minutes)</label>
          <input
            id="runs-waiting"
            type="number"
            min={0}
            value={waitingInput.value}
            onInput={(e) => (waitingInput.value = (e.target as HTMLInputElement).value)}
            aria-invalid={err?.field("waiting_longer_than_seconds") ? true : undefined}
            aria-describedby={err?.field("waiting_longer_than_seconds") ? "runs-waiting-error" : undefined}
          />
          <FieldMessage id="runs-waiting-error" error={err} field="waiting_longer_than_seconds" />
        </div>
        <button type="submit">Filter</button>
      </form>
      {err && !err.field("waiting_longer_than_seconds") && <ErrorBox error={err} />}
      <table>
        <caption>Runs, newest first (times in {zone})</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Agent</th>
            <th scope="col">Status</th>
            <th scope="col" class="num">Model calls</th>
            <th scope="col" class="num">Cost</th>
          </tr>
        </thead>
        <tbody>
          {p?.items.map((r) => (
            <tr key={r.id}>
              <td>
                <a href={`/runs/${r.id}`}>{formatInstant(zone, r.created_at)}</a>
              </td>
              <td>{r.agent}</td>
              <td>{STATUSES[r.status] ?? r.status}</td>
              <td class="num">{r.iterations}</td>
              <td class="num">{usd(r.cost_micros)}</td>
            </tr>
          ))}
          {p && p.items.length === 0 && (
            <tr>
              <td colSpan={5}>No runs here.</td>
            </tr>
          )}
        </tbody>
      </table>
      <Pager cursors={cursors} next={p?.next_cursor} />
    </>
  );
}

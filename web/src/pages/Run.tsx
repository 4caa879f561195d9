// One run, live: its state and steps from the api, reloaded whenever its subscription over
// socket.io delivers an event (each once, in order, resumed from the last `seq` after a
// reconnect); the events themselves as they arrive; its pending approvals to decide here; and
// cancel while it has not ended.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, sendJson, withQuery } from "../lib/api";
import { usd } from "../lib/format";
import { connected, subscribeRun, type RunEvent } from "../lib/live";
import { path } from "../lib/router";
import { canManage, membership, tenant, tenantPath } from "../lib/session";
import { formatInstant } from "../lib/time";
import { ApprovalCard, type Approval } from "./Approvals";
import { Card, ErrorBox } from "./parts";
import { STATUSES, type RunView } from "./Runs";

interface Step {
  id: string;
  step: number;
  kind: string;
  state: string;
  message: unknown;
  tool: string | null;
  arguments: unknown;
  result: unknown;
  created_at: string;
  finished_at: string | null;
}

const ENDED = ["succeeded", "failed", "cancelled", "timed_out"];

function brief(v: unknown): string {
  if (v === null || v === undefined) return "—";
  const text = typeof v === "string" ? v : JSON.stringify(v);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/// What a model step said: its text, or the tool calls it asked for.
function said(message: unknown): string {
  const m = message as { content?: unknown; tool_calls?: { function?: { name?: string } }[] } | null;
  if (!m) return "—";
  if (typeof m.content === "string" && m.content) return m.content;
  if (m.tool_calls?.length) return `asks for ${m.tool_calls.map((c) => c.function?.name ?? "a tool").join(", ")}`;
  return brief(m);
}

/// One event in a line: a status, a step and its state, an approval and its outcome.
function describe(e: RunEvent): string {
  const d = e.data as Record<string, unknown>;
  if (e.type === "run.status") return `${STATUSES[String(d.status)] ?? String(d.status)}${d.error_code ? ` (${String(d.error_code)})` : ""}`;
  if (e.type === "run.step") return `step ${String(d.step ?? "")}, ${String(d.kind ?? "")}${d.tool ? ` ${String(d.tool)}` : ""}: ${String(d.state ?? "")}`;
  return `${String(d.tool ?? d.kind ?? "")}: ${String(d.status ?? "")}`;
}

/// The run's answer: its text when it has one.
function answer(output: unknown): string {
  const text = (output as { text?: unknown } | null)?.text;
  return typeof text === "string" ? text : brief(output);
}

export function Run() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const runId = path.value.split("/").pop() ?? "";
  const run = useSignal<RunView | null>(null);
  const steps = useSignal<Step[]>([]);
  const pending = useSignal<Approval[]>([]);
  const events = useSignal<RunEvent[]>([]);
  const error = useSignal<ApiError | null>(null);

  useEffect(() => {
    let stale = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const base = tenantPath(`/runs/${encodeURIComponent(runId)}`);
    const load = () =>
      Promise.all([
        getJson<RunView>(base),
        getJson<Step[]>(`${base}/steps`),
        getJson<{ items: Approval[] }>(withQuery(tenantPath("/approvals"), { run_id: runId, status: "pending", limit: 20 })),
      ])
        .then(([r, s, a]) => {
          if (stale) return;
          run.value = r;
          steps.value = s;
          pending.value = a.items;
          error.value = null;
        })
        .catch((e) => (error.value = e instanceof ApiError ? e : null));
    load();
    const off = subscribeRun(runId, (e) => {
      events.value = [...events.value, e];
      timer ??= setTimeout(() => {
        timer = undefined;
        load();
      }, 200);
    });
    return () => {
      stale = true;
      clearTimeout(timer);
      off();
    };
  }, [runId]);

  async function cancel() {
    try {
      run.value = await sendJson<RunView>("POST", tenantPath(`/runs/${runId}/cancel`));
    } catch (e) {
      error.value = e instanceof ApiError ? e : null;
    }
  }

  const r = run.value;
  const canAct = canManage.value || membership.value?.role === "member";
  return (
    <>
      <h1>Run</h1>
      <p class="hint">
        <a href="/runs">Back to the runs</a>
      </p>
      <ErrorBox error={error.value} />
      {r && (
        <Card title="The run">
          <dl class="facts">
            <dt>Agent</dt>
            <dd>{r.agent}</dd>
            <dt>Status</dt>
            <dd data-testid="run-status">{STATUSES[r.status] ?? r.status}</dd>
            <dt>Started ({zone})</dt>
            <dd>{formatInstant(zone, r.started_at ?? r.created_at)}</dd>
            <dt>Ended</dt>
            <dd>{formatInstant(zone, r.finished_at)}</dd>
            <dt>Model calls</dt>
            <dd>
              {r.iterations} of at most {r.max_iterations}
            </dd>
            <dt>Cost</dt>
            <dd>
              {usd(r.cost_micros)}
              {r.budget_micros !== null && ` of a ${usd(r.budget_micros)} budget`}
            </dd>
            <dt>Answer</dt>
            <dd>{r.error ? `${r.error_code ?? "error"}: ${r.error}` : answer(r.output)}</dd>
          </dl>
          {!ENDED.includes(r.status) && canAct && (
            <p>
              <button type="button" class="danger" onClick={cancel}>
                Cancel run
              </button>
            </p>
          )}
        </Card>
      )}
      {pending.value.map((a) => (
        <ApprovalCard key={a.id} initial={a} />
      ))}
      <table>
        <caption>Steps, as they happen (times in {zone})</caption>
        <thead>
          <tr>
            <th scope="col" class="num">#</th>
            <th scope="col">Kind</th>
            <th scope="col">State</th>
            <th scope="col">What</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {steps.value.map((s) => (
            <tr key={s.id}>
              <td class="num">{s.step}</td>
              <td>{s.kind}</td>
              <td>{s.state}</td>
              <td>{s.kind === "tool" ? `${s.tool ?? ""} ${brief(s.arguments)}` : said(s.message)}</td>
              <td>{brief(s.result)}</td>
            </tr>
          ))}
          {steps.value.length === 0 && (
            <tr>
              <td colSpan={5}>No steps yet.</td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Events</h2>
      <p class="hint">{connected.value ? "Live: events arrive as the run makes them." : "Connecting to live updates…"}</p>
      <ol class="events" aria-live="polite" data-testid="run-events">
        {events.value.map((e) => (
          <li key={e.seq}>
            {formatInstant(zone, e.at)}: <code>{e.type}</code> {describe(e)}
          </li>
        ))}
      </ol>
    </>
  );
}

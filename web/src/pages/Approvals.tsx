// Approvals: the exact tool call a run waits on and its arguments, the time left before it
// expires (counting down), approve or reject with a reason. When someone else decided first the
// api answers 409 with the decision that won, and the card says who decided and how.
import { signal, useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, sendJson, withQuery } from "../lib/api";
import { usd } from "../lib/format";
import { tenant, tenantPath } from "../lib/session";
import { formatInstant } from "../lib/time";
import { ErrorBox, Pager } from "./parts";

export interface Approval {
  id: string;
  run_id: string;
  kind: "tool" | "budget";
  status: "pending" | "approved" | "rejected" | "expired";
  tool: string;
  arguments: unknown;
  requested_at: string;
  expires_at: string | null;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
  budget_micros: number | null;
}

interface Page {
  items: Approval[];
  next_cursor: string | null;
}

/// The time, once a second, for the countdowns.
const now = signal(Date.now());
setInterval(() => (now.value = Date.now()), 1000);

/// Members by user id, for "decided by …" (loaded once per tenant).
const emails = signal<Record<string, string>>({});
let emailsOf = "";
function loadEmails(): void {
  if (emailsOf === tenant.value?.id) return;
  emailsOf = tenant.value?.id ?? "";
  getJson<{ user_id: string; email: string }[]>(tenantPath("/members"))
    .then((m) => (emails.value = Object.fromEntries(m.map((x) => [x.user_id, x.email]))))
    .catch(() => undefined);
}

function timeLeft(expires: string | null): string {
  if (!expires) return "does not expire";
  const s = Math.max(0, Math.floor((Date.parse(expires) - now.value) / 1000));
  if (s === 0) return "expired";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${h > 0 ? `${h} h ` : ""}${pad(m)} min ${pad(s % 60)} s left`;
}

function decidedBy(a: Approval): string {
  const who = a.decided_by ? (emails.value[a.decided_by] ?? `user ${a.decided_by.slice(0, 8)}…`) : "nobody (it expired)";
  const when = formatInstant(tenant.value?.time_zone ?? "UTC", a.decided_at);
  return `${a.status === "expired" ? "Expired" : a.status === "approved" ? "Approved" : "Rejected"} by ${who} at ${when}`;
}

export function ApprovalCard({ initial, onDecided }: { initial: Approval; onDecided?: () => void }) {
  const a = useSignal(initial);
  const reason = useSignal("");
  const budget = useSignal("");
  const error = useSignal<ApiError | null>(null);
  const lostTo = useSignal<Approval | null>(null);
  useEffect(loadEmails, []);

  async function decide(decision: "approve" | "reject") {
    error.value = null;
    try {
      const body: Record<string, unknown> = { decision };
      if (reason.value.trim()) body.reason = reason.value.trim();
      if (a.value.kind === "budget" && decision === "approve") body.budget_usd = Number(budget.value);
      a.value = await sendJson<Approval>("POST", tenantPath(`/approvals/${a.value.id}/decision`), body);
      onDecided?.();
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.body.approval) {
        lostTo.value = e.body.approval as Approval;
        a.value = lostTo.value;
        onDecided?.();
      } else {
        error.value = e instanceof ApiError ? e : null;
      }
    }
  }

  const x = a.value;
  const zone = tenant.value?.time_zone ?? "UTC";
  const label = x.kind === "tool" ? `Tool call ${x.tool}` : "A larger budget";
  return (
    <section class="card approval" aria-label={`${label}, ${x.status}`}>
      <h2>
        {x.kind === "tool" ? (
          <>
            Run the tool <code>{x.tool}</code>
          </>
        ) : (
          "Raise the run's budget"
        )}
      </h2>
      <p class="hint">
        Run <a href={`/runs/${x.run_id}`}>{x.run_id.slice(0, 8)}…</a>, asked {formatInstant(zone, x.requested_at)} ({zone})
      </p>
      {x.kind === "tool" ? (
        <>
          <p>With exactly these arguments:</p>
          <pre data-testid="arguments">{JSON.stringify(x.arguments, null, 2)}</pre>
        </>
      ) : (
        <p>The run stopped at its budget of {usd(x.budget_micros ?? 0)}.</p>
      )}
      {lostTo.value && (
        <p class="alert" role="alert">
          Someone else decided first. {decidedBy(lostTo.value)}.
        </p>
      )}
      {x.status === "pending" ? (
        <>
          <p role="timer" aria-live="off" data-testid="expiry">
            {timeLeft(x.expires_at)}
            {x.expires_at && ` (expires ${formatInstant(zone, x.expires_at)})`}
          </p>
          <div class="filters">
            <div>
              <label for={`reason-${x.id}`}>Reason (optional)</label>
              <input id={`reason-${x.id}`} value={reason.value} onInput={(e) => (reason.value = (e.target as HTMLInputElement).value)} />
            </div>
            {x.kind === "budget" && (
              <div>
                <label for={`budget-${x.id}`}>New budget (US dollars)</label>
                <input
                  id={`budget-${x.id}`}
                  type="number"
                  min={0}
                  step="0.01"
                  value={budget.value}
                  onInput={(e) => (budget.value = (e.target as HTMLInputElement).value)}
                />
              </div>
            )}
            <button type="button" onClick={() => decide("approve")} aria-label={`Approve: ${label}`}>
              Approve
            </button>
            <button type="button" class="danger" onClick={() => decide("reject")} aria-label={`Reject: ${label}`}>
              Reject
            </button>
          </div>
        </>
      ) : (
        !lostTo.value && (
          <p role="status">
            {decidedBy(x)}
            {x.reason && `: “${x.reason}”`}
          </p>
        )
      )}
      <ErrorBox error={error.value} />
    </section>
  );
}

const PAGE_SIZE = 10;

export function Approvals() {
  const status = useSignal("pending");
  const cursors = useSignal<string[]>([""]);
  const page = useSignal<Page | null>(null);
  const error = useSignal<ApiError | null>(null);

  const cursor = cursors.value[cursors.value.length - 1];
  useEffect(() => {
    let stale = false;
    getJson<Page>(withQuery(tenantPath("/approvals"), { status: status.value, limit: PAGE_SIZE, cursor }))
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
  }, [status.value, cursor]);

  const p = page.value;
  return (
    <>
      <h1>Approvals</h1>
      <form class="filters" aria-label="Filter approvals" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="approval-status">State</label>
          <select
            id="approval-status"
            value={status.value}
            onChange={(e) => {
              status.value = (e.target as HTMLSelectElement).value;
              cursors.value = [""];
            }}
          >
            <option value="pending">Waiting for a decision</option>
            <option value="approved">Approved</option>
            <option value="rejected">Rejected</option>
            <option value="expired">Expired</option>
            <option value="">All</option>
          </select>
        </div>
      </form>
      <ErrorBox error={error.value} />
      {p?.items.map((a) => <ApprovalCard key={a.id} initial={a} />)}
      {p && p.items.length === 0 && <p>No approvals here.</p>}
      <Pager cursors={cursors} next={p?.next_cursor} />
    </>
  );
}

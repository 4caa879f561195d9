// Overview: today's spend and each budget's spend in its current period against its limit,
// with today's requests, error rate and p95 latency. It listens to `usage.tick` and
// `budget.alert` and reloads its figures from the api (the ledger is the truth; a tick only
// says something changed), at most once a second.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, withQuery } from "../lib/api";
import { count, percent, usd } from "../lib/format";
import { connected, onBudgetAlert, onUsageTick, type BudgetAlert } from "../lib/live";
import { tenant, tenantPath } from "../lib/session";
import { addDays, dayIn, formatTime, midnightIn } from "../lib/time";
import { Card, ErrorBox } from "./parts";

interface Budget {
  id: string;
  scope: string;
  scope_id: string | null;
  period: string;
  limit_micros: number;
  thresholds: number[];
  action: string;
  spent_micros: number;
  period_start: string | null;
  period_end: string | null;
}

export interface Summary {
  requests: number;
  errors: number;
  cost_micros: number;
  p95_latency_ms: number | null;
}

interface Figures {
  budgets: Budget[];
  today: Summary;
}

async function load(zone: string): Promise<Figures> {
  const today = dayIn(zone);
  const range = {
    from: midnightIn(zone, today).toISOString(),
    to: midnightIn(zone, addDays(today, 1)).toISOString(),
  };
  const [budgets, summary] = await Promise.all([
    getJson<Budget[]>(tenantPath("/budgets")),
    getJson<Summary>(withQuery(tenantPath("/usage/summary"), range)),
  ]);
  return { budgets, today: summary };
}

function BudgetMeter({ b }: { b: Budget }) {
  const share = b.limit_micros > 0 ? Math.min(100, (b.spent_micros / b.limit_micros) * 100) : 0;
  const scope = b.scope === "tenant" ? "Tenant" : `${b.scope.replace("_", " ")} ${b.scope_id?.slice(0, 8) ?? ""}`;
  const label = `${scope}, ${b.period}`;
  return (
    <li class="budget">
      <div class="budget-head">
        <span>{label}</span>
        <span>
          {usd(b.spent_micros)} of {usd(b.limit_micros)}
        </span>
      </div>
      <meter
        min={0}
        max={100}
        low={50}
        high={80}
        optimum={0}
        value={share}
        aria-label={`${label}: ${share.toFixed(0)} % of the limit spent`}
      />
      <div class="hint">
        {b.period === "total" ? "since the start" : `period started ${b.period_start}, ends ${formatTime(tenant.value?.time_zone ?? "UTC", b.period_end)}`}
        {b.action === "block" ? "; calls are refused past the limit" : "; alerts only"}
      </div>
    </li>
  );
}

export function Overview() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const figures = useSignal<Figures | null>(null);
  const error = useSignal<ApiError | null>(null);
  const alerts = useSignal<BudgetAlert[]>([]);
  const updatedAt = useSignal<Date | null>(null);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stale = false;
    const refresh = () =>
      load(zone)
        .then((f) => {
          if (stale) return;
          figures.value = f;
          updatedAt.value = new Date();
          error.value = null;
        })
        .catch((e) => (error.value = e instanceof ApiError ? e : new ApiError(0, "network", String(e))));
    const soon = () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        refresh();
      }, 1000);
    };
    refresh();
    const id = tenant.value?.id;
    const offTick = onUsageTick((t) => t.tenant_id === id && soon());
    const offAlert = onBudgetAlert((a) => {
      if (a.tenant_id !== id) return;
      alerts.value = [a, ...alerts.value].slice(0, 5);
      soon();
    });
    return () => {
      stale = true;
      clearTimeout(timer);
      offTick();
      offAlert();
    };
  }, [zone]);

  const f = figures.value;
  return (
    <>
      <h1>Overview</h1>
      <p class="hint" aria-live="polite">
        Today is {dayIn(zone)} in {zone}.{" "}
        {connected.value ? "Live: figures update as calls are recorded." : "Connecting for live updates…"}
        {updatedAt.value && ` Last updated ${updatedAt.value.toLocaleTimeString("en-GB", { timeZone: zone })}.`}
      </p>
      <ErrorBox error={error.value} />
      {alerts.value.map((a) => (
        <p class="alert" role="alert" key={`${a.budget_id}-${a.threshold}-${a.at}`}>
          Budget alert: {String(a.scope)} {String(a.period)} budget passed {String(a.threshold)} % (
          {usd(Number(a.spent_micros))} of {usd(Number(a.limit_micros))}).
        </p>
      ))}
      {f && (
        <div class="grid">
          <Card title="Today">
            <dl class="stats">
              <div>
                <dt>Spend</dt>
                <dd data-testid="spend-today">{usd(f.today.cost_micros)}</dd>
              </div>
              <div>
                <dt>Requests</dt>
                <dd data-testid="requests-today">{count(f.today.requests)}</dd>
              </div>
              <div>
                <dt>Error rate</dt>
                <dd>{percent(f.today.errors, f.today.requests)}</dd>
              </div>
              <div>
                <dt>p95 latency</dt>
                <dd>{f.today.p95_latency_ms === null ? "—" : `${count(f.today.p95_latency_ms)} ms`}</dd>
              </div>
            </dl>
          </Card>
          <Card title="Budgets">
            {f.budgets.length === 0 ? (
              <p>No budgets yet.</p>
            ) : (
              <ul class="budgets">
                {f.budgets.map((b) => (
                  <BudgetMeter key={b.id} b={b} />
                ))}
              </ul>
            )}
          </Card>
        </div>
      )}
    </>
  );
}

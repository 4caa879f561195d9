// The usage explorer: totals by day, model, key or workspace over a range of days in the
// tenant's time zone (the api groups days in that zone too, so a day here is the same day the
// ledger's rollups and budgets use). A chart, a table, and the same report as CSV.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, call, getJson, withQuery } from "../lib/api";
import { count, usd } from "../lib/format";
import { tenant, tenantPath } from "../lib/session";
import { addDays, dayIn, midnightIn } from "../lib/time";
import { BarChart } from "./Chart";
import { ErrorBox } from "./parts";

interface Row {
  key: string;
  requests: number;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  cost_micros: number;
}

interface Report {
  from: string;
  to: string;
  group_by: string;
  rows: Row[];
}

const GROUPS: Record<string, string> = {
  day: "Day",
  model: "Model",
  api_key: "API key",
  workspace: "Workspace",
};

/// The calls page's filter for a row of each grouping.
const CALLS_FILTER: Record<string, string> = {
  day: "day",
  model: "model",
  api_key: "api_key_id",
  workspace: "workspace_id",
};

export function Usage() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const today = dayIn(zone);
  const first = useSignal(addDays(today, -6));
  const last = useSignal(today);
  const groupBy = useSignal("day");
  const report = useSignal<Report | null>(null);
  const error = useSignal<ApiError | null>(null);
  const names = useSignal<Record<string, string>>({});

  // The range as the api takes it: from midnight of the first day to midnight after the last,
  // both in the tenant's zone.
  const query = () => ({
    from: midnightIn(zone, first.value).toISOString(),
    to: midnightIn(zone, addDays(last.value, 1)).toISOString(),
    group_by: groupBy.value,
  });

  useEffect(() => {
    if (!first.value || !last.value) return;
    let stale = false;
    getJson<Report>(withQuery(tenantPath("/usage"), query()))
      .then(async (r) => {
        // Keys are reported by id: their names come in one request (up to 200 of them).
        const keyIds = r.group_by === "api_key" ? r.rows.map((x) => x.key).filter(Boolean).slice(0, 200) : [];
        const named = keyIds.length
          ? await getJson<{ items: { id: string; name: string; prefix: string }[] }>(
              withQuery(tenantPath("/api-keys"), { status: "all", ids: keyIds.join(","), limit: 200 }),
            )
          : { items: [] };
        if (!stale) {
          names.value = Object.fromEntries(named.items.map((k) => [k.id, `${k.name} (${k.prefix}…)`]));
          report.value = r;
          error.value = null;
        }
      })
      .catch((e) => (error.value = e instanceof ApiError ? e : null));
    return () => {
      stale = true;
    };
  }, [first.value, last.value, groupBy.value, zone]);

  async function exportCsv() {
    try {
      const res = await call("GET", withQuery(tenantPath("/usage"), query()), { accept: "text/csv" });
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = `usage-${groupBy.value}-${first.value}-to-${last.value}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      error.value = e instanceof ApiError ? e : null;
    }
  }

  const r = report.value;
  const rows = r?.rows ?? [];
  const total = rows.reduce((s, x) => s + x.cost_micros, 0);
  // A key's name, or the start of an id (a deleted key, a workspace).
  const label = (k: string) =>
    k === "" ? "(none)" : (names.value[k] ?? (groupBy.value === "day" || groupBy.value === "model" ? k : k.slice(0, 8)));
  return (
    <>
      <h1>Usage</h1>
      <form class="filters" aria-label="Usage filters" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="usage-from">First day ({zone})</label>
          <input
            id="usage-from"
            type="date"
            value={first.value}
            max={last.value}
            onChange={(e) => (first.value = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div>
          <label for="usage-to">Last day ({zone})</label>
          <input
            id="usage-to"
            type="date"
            value={last.value}
            min={first.value}
            onChange={(e) => (last.value = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div>
          <label for="usage-group">Group by</label>
          <select
            id="usage-group"
            value={groupBy.value}
            onChange={(e) => (groupBy.value = (e.target as HTMLSelectElement).value)}
          >
            {Object.entries(GROUPS).map(([v, t]) => (
              <option key={v} value={v}>
                {t}
              </option>
            ))}
          </select>
        </div>
        <button type="button" onClick={exportCsv}>
          Export CSV
        </button>
      </form>
      <p class="hint">
        Days run from midnight to midnight in {zone}, the tenant's time zone, as budgets count them. A row's
        name lists its calls, each with the explanation of its charge; or see <a href="/usage/calls">every call</a>.
      </p>
      <ErrorBox error={error.value} />
      {r && rows.length > 0 && (
        <BarChart labels={rows.map((x) => label(x.key))} values={rows.map((x) => x.cost_micros)} label="Spend" format={usd} />
      )}
      <table>
        <caption>
          Spend by {GROUPS[groupBy.value].toLowerCase()}, {first.value} to {last.value} ({zone}): {usd(total)}
        </caption>
        <thead>
          <tr>
            <th scope="col">{GROUPS[groupBy.value]}</th>
            <th scope="col" class="num">Requests</th>
            <th scope="col" class="num">Input tokens</th>
            <th scope="col" class="num">Cached input</th>
            <th scope="col" class="num">Output tokens</th>
            <th scope="col" class="num">Spend</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((x) => (
            <tr key={x.key}>
              <th scope="row" title={x.key || undefined}>
                {x.key === "" ? (
                  "(none)"
                ) : (
                  <a href={withQuery("/usage/calls", { [CALLS_FILTER[groupBy.value]]: x.key })}>{names.value[x.key] ?? x.key}</a>
                )}
              </th>
              <td class="num">{count(x.requests)}</td>
              <td class="num">{count(x.input_tokens)}</td>
              <td class="num">{count(x.cached_input_tokens)}</td>
              <td class="num">{count(x.output_tokens)}</td>
              <td class="num">{usd(x.cost_micros)}</td>
            </tr>
          ))}
          {r && rows.length === 0 && (
            <tr>
              <td colSpan={6}>No usage in this range.</td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}

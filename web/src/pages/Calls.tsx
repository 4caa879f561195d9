// Calls: the ledger's rows one by one, newest first, a page at a time from the server (the
// cursor is the last row's time and id), filtered by days in the tenant's zone, model, key or
// workspace. The usage explorer links here with its row's filter; each call links to its
// explanation.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, withQuery } from "../lib/api";
import { count, usd } from "../lib/format";
import { search } from "../lib/router";
import { tenant, tenantPath } from "../lib/session";
import { addDays, dayIn, formatInstant, midnightIn } from "../lib/time";
import { ErrorBox, Pager } from "./parts";

export interface UsageEvent {
  event_id: string;
  occurred_at: string;
  request_id: string | null;
  api_key_id: string | null;
  workspace_id: string | null;
  run_id: string | null;
  provider: string;
  model: string;
  status: string;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  cost_micros: number;
  latency_ms: number | null;
}

interface Page {
  items: UsageEvent[];
  next_cursor: string | null;
}

const PAGE_SIZE = 25;

export function Calls() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const today = dayIn(zone);
  // The filters the usage explorer's link carries.
  const given = new URLSearchParams(search.value);
  const first = useSignal(given.get("day") ?? addDays(today, -6));
  const last = useSignal(given.get("day") ?? today);
  const model = useSignal(given.get("model") ?? "");
  const modelInput = useSignal(model.value);
  const apiKeyId = given.get("api_key_id") ?? "";
  const workspaceId = given.get("workspace_id") ?? "";
  const cursors = useSignal<string[]>([""]);
  const page = useSignal<Page | null>(null);
  const error = useSignal<ApiError | null>(null);

  const cursor = cursors.value[cursors.value.length - 1];
  useEffect(() => {
    if (!first.value || !last.value) return;
    const path = withQuery(tenantPath("/usage/events"), {
      from: midnightIn(zone, first.value).toISOString(),
      to: midnightIn(zone, addDays(last.value, 1)).toISOString(),
      model: model.value,
      api_key_id: apiKeyId,
      workspace_id: workspaceId,
      limit: PAGE_SIZE,
      cursor,
    });
    let stale = false;
    getJson<Page>(path)
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
  }, [first.value, last.value, model.value, cursor, zone]);

  const restart = () => (cursors.value = [""]);
  const p = page.value;
  return (
    <>
      <h1>Calls</h1>
      <p class="hint">
        Every call the ledger charged, newest first. <a href="/usage">Back to the usage explorer</a>.
      </p>
      <form
        class="filters"
        role="search"
        aria-label="Find calls"
        onSubmit={(e) => {
          e.preventDefault();
          model.value = modelInput.value.trim();
          restart();
        }}
      >
        <div>
          <label for="calls-from">First day ({zone})</label>
          <input
            id="calls-from"
            type="date"
            value={first.value}
            max={last.value}
            onChange={(e) => ((first.value = (e.target as HTMLInputElement).value), restart())}
          />
        </div>
        <div>
          <label for="calls-to">Last day ({zone})</label>
          <input
            id="calls-to"
            type="date"
            value={last.value}
            min={first.value}
            onChange={(e) => ((last.value = (e.target as HTMLInputElement).value), restart())}
          />
        </div>
        <div>
          <label for="calls-model">Model</label>
          <input
            id="calls-model"
            type="search"
            value={modelInput.value}
            onInput={(e) => (modelInput.value = (e.target as HTMLInputElement).value)}
          />
        </div>
        <button type="submit">Filter</button>
      </form>
      {(apiKeyId || workspaceId) && (
        <p class="hint">
          Only the calls of {apiKeyId ? `API key ${apiKeyId.slice(0, 8)}…` : `workspace ${workspaceId.slice(0, 8)}…`}.{" "}
          <a href="/usage/calls">Show every call</a>
        </p>
      )}
      <ErrorBox error={error.value} />
      <table>
        <caption>
          Calls{model.value && ` to ${model.value}`}, {first.value} to {last.value}, newest first (times in {zone})
        </caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Model</th>
            <th scope="col">Outcome</th>
            <th scope="col" class="num">Input tokens</th>
            <th scope="col" class="num">Output tokens</th>
            <th scope="col" class="num">Charge</th>
            <th scope="col"><span class="visually-hidden">Explanation</span></th>
          </tr>
        </thead>
        <tbody>
          {p?.items.map((c) => (
            <tr key={c.event_id}>
              <td>{formatInstant(zone, c.occurred_at)}</td>
              <td>{c.model}</td>
              <td>{c.status}</td>
              <td class="num">{count(c.input_tokens)}</td>
              <td class="num">{count(c.output_tokens)}</td>
              <td class="num">{usd(c.cost_micros)}</td>
              <td>
                <a href={`/usage/calls/${c.event_id}`} aria-label={`Explain the charge of the call at ${formatInstant(zone, c.occurred_at)}`}>
                  Explain
                </a>
              </td>
            </tr>
          ))}
          {p && p.items.length === 0 && (
            <tr>
              <td colSpan={7}>No calls here.</td>
            </tr>
          )}
        </tbody>
      </table>
      <Pager cursors={cursors} next={p?.next_cursor} />
    </>
  );
}

// The audit log: who did what, newest first, a page at a time from the server, filtered by
// action and by actor (the tenant's members, by e-mail). Admins and owners only, as the api.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, withQuery } from "../lib/api";
import { canManage, tenant, tenantPath } from "../lib/session";
import { formatInstant } from "../lib/time";
import { ErrorBox, Pager } from "./parts";

interface Entry {
  id: string;
  actor_user_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: unknown;
  created_at: string;
}

interface Page {
  items: Entry[];
  next_cursor: string | null;
}

interface Member {
  user_id: string;
  email: string;
}

const PAGE_SIZE = 25;

export function Audit() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const actionInput = useSignal("");
  const action = useSignal("");
  const actor = useSignal("");
  const members = useSignal<Member[]>([]);
  const cursors = useSignal<string[]>([""]);
  const page = useSignal<Page | null>(null);
  const error = useSignal<ApiError | null>(null);

  useEffect(() => {
    getJson<Member[]>(tenantPath("/members"))
      .then((m) => (members.value = m))
      .catch(() => undefined);
  }, []);

  const cursor = cursors.value[cursors.value.length - 1];
  useEffect(() => {
    if (!canManage.value) return;
    let stale = false;
    getJson<Page>(withQuery(tenantPath("/audit-log"), { action: action.value, actor: actor.value, limit: PAGE_SIZE, cursor }))
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
  }, [action.value, actor.value, cursor]);

  if (!canManage.value) {
    return (
      <>
        <h1>Audit log</h1>
        <p>Only the tenant's admins and owners read its audit log.</p>
      </>
    );
  }
  const restart = () => (cursors.value = [""]);
  const who = (id: string | null) =>
    id === null ? "the platform" : (members.value.find((m) => m.user_id === id)?.email ?? `user ${id.slice(0, 8)}…`);
  const p = page.value;
  return (
    <>
      <h1>Audit log</h1>
      <form
        class="filters"
        role="search"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          action.value = actionInput.value.trim();
          restart();
        }}
      >
        <div>
          <label for="audit-action">Action</label>
          <input
            id="audit-action"
            type="search"
            placeholder="api_key.revoke"
            aria-describedby="audit-action-hint"
            value={actionInput.value}
            onInput={(e) => (actionInput.value = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div>
          <label for="audit-actor">Actor</label>
          <select
            id="audit-actor"
            value={actor.value}
            onChange={(e) => {
              actor.value = (e.target as HTMLSelectElement).value;
              restart();
            }}
          >
            <option value="">Anyone</option>
            {members.value.map((m) => (
              <option key={m.user_id} value={m.user_id}>
                {m.email}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">Filter</button>
      </form>
      <p id="audit-action-hint" class="hint">
        An action is matched exactly, such as <code>api_key.create</code> or <code>member.remove</code>.
      </p>
      <ErrorBox error={error.value} />
      <table>
        <caption>
          {action.value ? `“${action.value}” entries` : "Entries"}
          {actor.value && ` by ${who(actor.value)}`}, newest first (times in {zone})
        </caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">From</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {p?.items.map((a) => (
            <tr key={a.id}>
              <td>{formatInstant(zone, a.created_at)}</td>
              <td>{who(a.actor_user_id)}</td>
              <td>
                <code>{a.action}</code>
              </td>
              <td>{a.target_type ? `${a.target_type} ${a.target_id?.slice(0, 8) ?? ""}` : "—"}</td>
              <td title={a.user_agent ?? undefined}>{a.ip ?? "—"}</td>
              <td>
                <details>
                  <summary>Show</summary>
                  <pre>{JSON.stringify({ request_id: a.request_id, target_id: a.target_id, ...(a.details as object) }, null, 2)}</pre>
                </details>
              </td>
            </tr>
          ))}
          {p && p.items.length === 0 && (
            <tr>
              <td colSpan={6}>No entries here.</td>
            </tr>
          )}
        </tbody>
      </table>
      <Pager cursors={cursors} next={p?.next_cursor} />
    </>
  );
}

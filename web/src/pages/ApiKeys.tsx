// API keys: a page at a time from the server (search by name or prefix, filter by state), a
// create form whose answer shows the secret once with a copy button, and revocation.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson, sendJson, withQuery } from "../lib/api";
import { canManage, tenant, tenantPath } from "../lib/session";
import { formatTime } from "../lib/time";
import { ErrorBox, FieldMessage, Pager } from "./parts";

interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  workspace_id: string | null;
  rpm_limit: number | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  created_at: string;
}

interface Page {
  items: ApiKey[];
  next_cursor: string | null;
}

const PAGE_SIZE = 25;

function CreateKey({ onCreated }: { onCreated: () => void }) {
  const name = useSignal("");
  const rpm = useSignal("");
  const error = useSignal<ApiError | null>(null);
  const secret = useSignal<string | null>(null);
  const copied = useSignal(false);

  async function submit(e: Event) {
    e.preventDefault();
    error.value = null;
    try {
      const body: Record<string, unknown> = { name: name.value };
      if (rpm.value.trim()) body.rpm_limit = Number(rpm.value);
      const created = await sendJson<{ secret: string }>("POST", tenantPath("/api-keys"), body);
      secret.value = created.secret;
      copied.value = false;
      name.value = "";
      rpm.value = "";
      onCreated();
    } catch (err) {
      error.value = err instanceof ApiError ? err : new ApiError(0, "network", String(err));
    }
  }

  async function copy() {
    if (!secret.value) return;
    await navigator.clipboard.writeText(secret.value);
    copied.value = true;
  }

  const err = error.value;
  const unnamed = err?.errors.filter((x) => !["name", "rpm_limit"].includes(x.field)) ?? [];
  return (
    <section class="card" aria-labelledby="create-key">
      <h2 id="create-key">Create a key</h2>
      {secret.value ? (
        <div class="secret" role="status">
          <p>
            <strong>Copy this key now.</strong> It is shown this once; only its hash is stored.
          </p>
          <code data-testid="new-secret">{secret.value}</code>
          <div class="row">
            <button type="button" onClick={copy}>
              {copied.value ? "Copied" : "Copy key"}
            </button>
            <button type="button" onClick={() => (secret.value = null)}>
              Done
            </button>
          </div>
        </div>
      ) : (
        <form class="inline" onSubmit={submit} noValidate>
          <div>
            <label for="key-name">Name</label>
            <input
              id="key-name"
              required
              maxLength={200}
              value={name.value}
              onInput={(e) => (name.value = (e.target as HTMLInputElement).value)}
              aria-invalid={err?.field("name") ? true : undefined}
              aria-describedby={err?.field("name") ? "key-name-error" : undefined}
            />
            <FieldMessage id="key-name-error" error={err} field="name" />
          </div>
          <div>
            <label for="key-rpm">Requests per minute (optional)</label>
            <input
              id="key-rpm"
              type="number"
              min={1}
              value={rpm.value}
              onInput={(e) => (rpm.value = (e.target as HTMLInputElement).value)}
              aria-invalid={err?.field("rpm_limit") ? true : undefined}
              aria-describedby={err?.field("rpm_limit") ? "key-rpm-error" : undefined}
            />
            <FieldMessage id="key-rpm-error" error={err} field="rpm_limit" />
          </div>
          <button type="submit">Create key</button>
          {err && (err.errors.length === 0 || unnamed.length > 0) && (
            <ErrorBox error={new ApiError(err.status, err.code, err.detail, unnamed)} />
          )}
        </form>
      )}
    </section>
  );
}

function RevokeButton({ k, onRevoked }: { k: ApiKey; onRevoked: () => void }) {
  const confirming = useSignal(false);
  const error = useSignal<ApiError | null>(null);
  if (k.revoked_at) return null;
  if (!confirming.value) {
    return (
      <button type="button" onClick={() => (confirming.value = true)} aria-label={`Revoke ${k.name}`}>
        Revoke
      </button>
    );
  }
  return (
    <span class="row">
      <button
        type="button"
        class="danger"
        aria-label={`Confirm revoking ${k.name}`}
        onClick={async () => {
          try {
            await sendJson("DELETE", tenantPath(`/api-keys/${k.id}`));
            onRevoked();
          } catch (err) {
            error.value = err instanceof ApiError ? err : null;
          }
        }}
      >
        Yes, revoke
      </button>
      <button type="button" onClick={() => (confirming.value = false)}>
        Cancel
      </button>
      <ErrorBox error={error.value} />
    </span>
  );
}

export function ApiKeys() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const search = useSignal("");
  const query = useSignal("");
  const status = useSignal("active");
  // Cursors of the pages before this one ("" for the first), for "Previous".
  const cursors = useSignal<string[]>([""]);
  const page = useSignal<Page | null>(null);
  const error = useSignal<ApiError | null>(null);
  const reload = useSignal(0);

  const cursor = cursors.value[cursors.value.length - 1];
  useEffect(() => {
    const path = withQuery(tenantPath("/api-keys"), {
      q: query.value,
      status: status.value,
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
  }, [query.value, status.value, cursor, reload.value]);

  const restart = () => (cursors.value = [""]);
  const refresh = () => {
    reload.value++;
  };
  const p = page.value;
  return (
    <>
      <h1>API keys</h1>
      {canManage.value && <CreateKey onCreated={() => (restart(), refresh())} />}
      <form
        class="filters"
        role="search"
        aria-label="Find keys"
        onSubmit={(e) => {
          e.preventDefault();
          query.value = search.value.trim();
          restart();
        }}
      >
        <div>
          <label for="key-search">Name or prefix</label>
          <input
            id="key-search"
            type="search"
            value={search.value}
            onInput={(e) => (search.value = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div>
          <label for="key-status">State</label>
          <select
            id="key-status"
            value={status.value}
            onChange={(e) => {
              status.value = (e.target as HTMLSelectElement).value;
              restart();
            }}
          >
            <option value="active">Active</option>
            <option value="revoked">Revoked</option>
            <option value="all">All</option>
          </select>
        </div>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={error.value} />
      <table>
        <caption>
          Keys{query.value && ` matching “${query.value}”`}, newest first (times in {zone})
        </caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
            {canManage.value && <th scope="col"><span class="visually-hidden">Actions</span></th>}
          </tr>
        </thead>
        <tbody>
          {p?.items.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td>
                <code>{k.prefix}…</code>
              </td>
              <td>{formatTime(zone, k.created_at)}</td>
              <td>{formatTime(zone, k.last_used_at)}</td>
              <td>{k.revoked_at ? `Revoked ${formatTime(zone, k.revoked_at)}` : "Active"}</td>
              {canManage.value && (
                <td>
                  <RevokeButton k={k} onRevoked={refresh} />
                </td>
              )}
            </tr>
          ))}
          {p && p.items.length === 0 && (
            <tr>
              <td colSpan={canManage.value ? 6 : 5}>No keys here.</td>
            </tr>
          )}
        </tbody>
      </table>
      <Pager cursors={cursors} next={p?.next_cursor} />
    </>
  );
}

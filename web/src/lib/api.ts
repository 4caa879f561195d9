// The REST client: bearer token from the session, one refresh on an expired token, and
// problem+json errors turned into `ApiError` with the fields they name.
import { session, setSession, type Tokens } from "./session";

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    /// The whole problem document, for what a route adds to it (a 409's winning decision).
    readonly body: Record<string, unknown> = {},
  ) {
    super(detail);
  }

  /// The message for one field, if the API named it.
  field(name: string): string | undefined {
    return this.errors.find((e) => e.field === name)?.message;
  }
}

interface Options {
  body?: unknown;
  accept?: string;
  /// No bearer token and no refresh (sign-in itself).
  anonymous?: boolean;
}

async function toError(res: Response): Promise<ApiError> {
  try {
    const p = await res.json();
    return new ApiError(res.status, p.code ?? "error", p.detail ?? res.statusText, p.errors ?? [], p);
  } catch {
    return new ApiError(res.status, "error", `${res.status} ${res.statusText}`);
  }
}

function send(method: string, path: string, opts: Options, token?: string): Promise<Response> {
  const headers: Record<string, string> = { accept: opts.accept ?? "application/json" };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
}

let refreshing: Promise<boolean> | null = null;

/// Trades the refresh token for new tokens once, however many requests (or the live socket)
/// saw the expiry. False, and signed out, when the refresh token is refused.
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    const current = session.value;
    if (!current) return false;
    const res = await send("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: current.refresh_token },
      anonymous: true,
    });
    if (!res.ok) {
      setSession(null);
      return false;
    }
    setSession((await res.json()) as Tokens);
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/// A request to the api; throws `ApiError` on a non-2xx answer.
export async function call(method: string, path: string, opts: Options = {}): Promise<Response> {
  const token = opts.anonymous ? undefined : session.value?.access_token;
  let res = await send(method, path, opts, token);
  if (res.status === 401 && token && (await refresh())) {
    res = await send(method, path, opts, session.value?.access_token);
  }
  if (res.status === 401 && token) setSession(null);
  if (!res.ok) throw await toError(res);
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await call("GET", path)).json() as Promise<T>;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await call(method, path, { body });
  return (res.status === 204 ? undefined : await res.json()) as T;
}

/// `path?k=v&…` without the empty values.
export function withQuery(path: string, query: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// Live updates over socket.io: `usage.tick` (what the ledger recorded since the last tick),
// `budget.alert` (a budget crossed a threshold) and a subscribed run's events (`run.status`,
// `run.step`, `approval.requested`, `approval.decided`), each once and in order: a subscription
// asks for the events after the last `seq` seen, again on every reconnect. The server joins the socket to the rooms of
// the user's tenants; the handshake's `auth` carries the current access token on every
// (re)connect, never the URL.
//
// The server disconnects a socket when its access token expires (or is revoked), and refuses
// a handshake with an expired one; socket.io does not reconnect after either. So both renew
// the tokens (one refresh shared with the REST client) and connect again, backing off from
// 1 s to 30 s while it keeps failing. A refused refresh signs the user out.
import { signal } from "@preact/signals";
import { io, type Socket } from "socket.io-client";
import { refresh } from "./api";
import { session } from "./session";

export interface UsageTick {
  tenant_id: string;
  at: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  spend_micros: number;
}

export interface BudgetAlert {
  tenant_id: string;
  at: string;
  [field: string]: unknown;
}

export const connected = signal(false);

let socket: Socket | null = null;
let backoff = 1000;
let renewing: ReturnType<typeof setTimeout> | undefined;

function renew(): void {
  if (renewing !== undefined) return;
  renewing = setTimeout(async () => {
    renewing = undefined;
    if (socket && !socket.connected && (await refresh())) socket.connect();
  }, backoff);
  backoff = Math.min(backoff * 2, 30_000);
}
const tickListeners = new Set<(t: UsageTick) => void>();
const alertListeners = new Set<(a: BudgetAlert) => void>();

function ensureSocket(): void {
  if (socket) return;
  socket = io({
    path: "/socket.io",
    transports: ["websocket", "polling"],
    auth: (cb) => cb({ token: session.value?.access_token ?? "" }),
  });
  socket.on("connect", () => {
    connected.value = true;
    backoff = 1000;
    runs.forEach((r, id) => socket?.emit("subscribe", { run_id: id, after_seq: r.seq }));
  });
  socket.on("disconnect", (reason) => {
    connected.value = false;
    if (reason === "io server disconnect") renew();
  });
  // `active` is false when the server refused the handshake (no automatic retry then).
  socket.on("connect_error", () => {
    if (!socket?.active) renew();
  });
  socket.on("usage.tick", (t: UsageTick) => tickListeners.forEach((l) => l(t)));
  socket.on("budget.alert", (a: BudgetAlert) => alertListeners.forEach((l) => l(a)));
  for (const name of RUN_EVENTS) {
    socket.on(name, (e: RunEvent) => {
      const r = runs.get(e.run_id);
      if (!r || e.seq <= r.seq) return;
      r.seq = e.seq;
      r.listener(e);
    });
  }
}

export interface RunEvent {
  tenant_id: string;
  run_id: string;
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

const RUN_EVENTS = ["run.status", "run.step", "approval.requested", "approval.decided"];
const runs = new Map<string, { seq: number; listener: (e: RunEvent) => void }>();

/// A run's events from the first (or after `seq`), then live ones, until the returned function
/// is called.
export function subscribeRun(runId: string, listener: (e: RunEvent) => void, seq = 0): () => void {
  ensureSocket();
  runs.set(runId, { seq, listener });
  if (socket?.connected) socket.emit("subscribe", { run_id: runId, after_seq: seq });
  return () => {
    runs.delete(runId);
    socket?.emit("unsubscribe", { run_id: runId });
  };
}

export function onUsageTick(listener: (t: UsageTick) => void): () => void {
  ensureSocket();
  tickListeners.add(listener);
  return () => tickListeners.delete(listener);
}

export function onBudgetAlert(listener: (a: BudgetAlert) => void): () => void {
  ensureSocket();
  alertListeners.add(listener);
  return () => alertListeners.delete(listener);
}

/// On sign-out: the socket's rooms belong to the old session.
export function disconnect(): void {
  clearTimeout(renewing);
  renewing = undefined;
  socket?.disconnect();
  socket = null;
  runs.clear();
  connected.value = false;
}

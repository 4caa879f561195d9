// Live updates over socket.io: `usage.tick` (what the ledger recorded since the last tick) and
// `budget.alert` (a budget crossed a threshold). The server joins the socket to the rooms of
// the user's tenants; the handshake's `auth` carries the current access token on every
// (re)connect, never the URL.
import { signal } from "@preact/signals";
import { io, type Socket } from "socket.io-client";
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
const tickListeners = new Set<(t: UsageTick) => void>();
const alertListeners = new Set<(a: BudgetAlert) => void>();

function ensureSocket(): void {
  if (socket) return;
  socket = io({
    path: "/socket.io",
    transports: ["websocket", "polling"],
    auth: (cb) => cb({ token: session.value?.access_token ?? "" }),
  });
  socket.on("connect", () => (connected.value = true));
  socket.on("disconnect", () => (connected.value = false));
  socket.on("usage.tick", (t: UsageTick) => tickListeners.forEach((l) => l(t)));
  socket.on("budget.alert", (a: BudgetAlert) => alertListeners.forEach((l) => l(a)));
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
  socket?.disconnect();
  socket = null;
  connected.value = false;
}

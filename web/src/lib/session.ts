// Who is signed in and which tenant they look at. Tokens live in sessionStorage: they end with
// the tab, and never sit in a cookie (the api authenticates by bearer token only, so there is
// nothing for a cross-site request to ride on).
import { computed, signal } from "@preact/signals";

export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  user_id: string;
}

export interface Membership {
  tenant_id: string;
  tenant_name: string;
  tenant_slug: string;
  role: "owner" | "admin" | "member" | "viewer";
}

export interface Me {
  user: { id: string; email: string; display_name: string; totp_enabled: boolean; is_platform_admin: boolean };
  memberships: Membership[];
}

export interface Tenant {
  id: string;
  name: string;
  slug: string;
  time_zone: string;
  status: string;
}

const TOKENS = "sb.tokens";
const TENANT = "sb.tenant";

function load(): Tokens | null {
  try {
    const raw = sessionStorage.getItem(TOKENS);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  } catch {
    return null;
  }
}

export const session = signal<Tokens | null>(load());
export const me = signal<Me | null>(null);
export const tenant = signal<Tenant | null>(null);
export const tenantId = signal<string | null>(sessionStorage.getItem(TENANT));

export const membership = computed(() =>
  me.value?.memberships.find((m) => m.tenant_id === tenantId.value) ?? null,
);
/// Admins and owners manage keys; members and viewers read.
export const canManage = computed(() => ["owner", "admin"].includes(membership.value?.role ?? ""));

export function setSession(tokens: Tokens | null): void {
  session.value = tokens;
  if (tokens) {
    sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  } else {
    sessionStorage.removeItem(TOKENS);
    me.value = null;
    tenant.value = null;
  }
}

export function chooseTenant(id: string): void {
  tenantId.value = id;
  sessionStorage.setItem(TENANT, id);
}

/// `/api/v1/tenants/{current}` + `rest`.
export function tenantPath(rest = ""): string {
  return `/api/v1/tenants/${tenantId.value}${rest}`;
}

// The shell: sign-in when there is no session, otherwise the header (tenant switcher, time
// zone, sign-out), the navigation and the page for the path.
import { useEffect } from "preact/hooks";
import { getJson, sendJson } from "./lib/api";
import { disconnect } from "./lib/live";
import { navigate, onLinkClick, path, search } from "./lib/router";
import {
  chooseTenant,
  me,
  session,
  setSession,
  tenant,
  tenantId,
  type Me,
  type Tenant,
} from "./lib/session";
import { AcceptInvitation } from "./pages/AcceptInvitation";
import { ApiKeys } from "./pages/ApiKeys";
import { Approvals } from "./pages/Approvals";
import { Audit } from "./pages/Audit";
import { Calls } from "./pages/Calls";
import { Explain } from "./pages/Explain";
import { Overview } from "./pages/Overview";
import { Run } from "./pages/Run";
import { Runs } from "./pages/Runs";
import { SignIn } from "./pages/SignIn";
import { Usage } from "./pages/Usage";

// `nav: false` pages are reached from another page; a `path` ending in "/" takes the rest of
// the path as an id.
const PAGES: { path: string; title: string; view: () => preact.JSX.Element; nav?: false }[] = [
  { path: "/", title: "Overview", view: Overview },
  { path: "/usage", title: "Usage", view: Usage },
  { path: "/usage/calls", title: "Calls", view: Calls, nav: false },
  { path: "/usage/calls/", title: "Explain this charge", view: Explain, nav: false },
  { path: "/api-keys", title: "API keys", view: ApiKeys },
  { path: "/runs", title: "Runs", view: Runs },
  { path: "/runs/", title: "Run", view: Run, nav: false },
  { path: "/approvals", title: "Approvals", view: Approvals },
  { path: "/audit-log", title: "Audit log", view: Audit },
  { path: "/accept-invitation", title: "Accept an invitation", view: AcceptInvitation, nav: false },
];
/// Pages that need no tenant (an invitee may have none yet).
const TENANTLESS = ["/accept-invitation"];

function pageFor(at: string) {
  return PAGES.find((p) => (p.path.endsWith("/") && p.path !== "/" ? at.startsWith(p.path) && at.length > p.path.length : at === p.path));
}

async function signOut(): Promise<void> {
  const tokens = session.value;
  try {
    if (tokens) await sendJson("POST", "/api/v1/auth/logout", { refresh_token: tokens.refresh_token });
  } catch {
    // The session ends here either way.
  }
  disconnect();
  setSession(null);
  navigate("/sign-in");
}

function TenantSwitcher() {
  const memberships = me.value?.memberships ?? [];
  if (memberships.length === 0) return null;
  return (
    <label class="tenant-switcher">
      Tenant
      <select
        value={tenantId.value ?? ""}
        onChange={(e) => chooseTenant((e.target as HTMLSelectElement).value)}
      >
        {memberships.map((m) => (
          <option key={m.tenant_id} value={m.tenant_id}>
            {m.tenant_name} ({m.role})
          </option>
        ))}
      </select>
    </label>
  );
}

function Shell() {
  // Who is signed in; the first tenant unless one was chosen before in this tab.
  useEffect(() => {
    getJson<Me>("/api/v1/me")
      .then((m) => {
        me.value = m;
        const known = m.memberships.some((x) => x.tenant_id === tenantId.value);
        if (!known && m.memberships[0]) chooseTenant(m.memberships[0].tenant_id);
      })
      .catch(() => undefined);
  }, []);
  // The tenant itself: its name and time zone.
  const id = tenantId.value;
  useEffect(() => {
    if (!id || !me.value) return;
    tenant.value = null;
    getJson<Tenant>(`/api/v1/tenants/${id}`)
      .then((t) => (tenant.value = t))
      .catch(() => undefined);
  }, [id, me.value]);

  const page = pageFor(path.value);
  useEffect(() => {
    document.title = `${page?.title ?? "Not found"} · Switchboard`;
  }, [page]);
  const View = page?.view;
  return (
    <div class="shell" onClick={onLinkClick}>
      <header class="top">
        <a class="brand" href="/">Switchboard</a>
        <TenantSwitcher />
        {tenant.value && (
          <span class="zone" title="Every date on these pages is in this time zone">
            Time zone: <strong>{tenant.value.time_zone}</strong>
          </span>
        )}
        <span class="who">{me.value?.user.email}</span>
        <button type="button" onClick={signOut}>Sign out</button>
      </header>
      <nav aria-label="Pages">
        <ul>
          {PAGES.filter((p) => p.nav !== false).map((p) => (
            <li key={p.path}>
              <a href={p.path} aria-current={p.path === path.value ? "page" : undefined}>
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">
        {me.value && View && TENANTLESS.includes(path.value) ? (
          <View />
        ) : me.value && me.value.memberships.length === 0 ? (
          <>
            <h1>No tenant yet</h1>
            <p>You are not a member of any tenant yet: ask a tenant's admin for an invitation.</p>
          </>
        ) : !me.value || !tenant.value ? (
          <p role="status">Loading…</p>
        ) : View ? (
          <View key={`${tenant.value.id} ${path.value}${search.value}`} />
        ) : (
          <>
            <h1>Not found</h1>
            <p>
              There is no page at {path.value}. <a href="/">Go to the overview</a>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}

/// Where sign-in leads: the `next` page if it is one of ours (a path, never another origin).
function afterSignIn(): string {
  const next = new URLSearchParams(search.value).get("next") ?? "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

export function App() {
  const signedIn = session.value !== null;
  // Signed out, a page sends the visitor to sign in and back (an invitation's link, say).
  useEffect(() => {
    if (!signedIn && path.value !== "/sign-in") {
      const next = path.value === "/" ? "" : `?next=${encodeURIComponent(path.value + search.value)}`;
      navigate(`/sign-in${next}`, true);
    }
    if (signedIn && path.value === "/sign-in") navigate(afterSignIn(), true);
  }, [signedIn]);
  return signedIn ? <Shell /> : <SignIn />;
}

// Accepting an invitation: the link from the e-mail (`/accept-invitation?token=…`) opened while
// signed in (sign-in brings the visitor back here). The api checks the account's address is the
// invited one and verified; its refusal is shown as it says.
import { useSignal } from "@preact/signals";
import { ApiError, getJson, sendJson } from "../lib/api";
import { search } from "../lib/router";
import { chooseTenant, me, type Me, type Membership } from "../lib/session";
import { ErrorBox } from "./parts";

export function AcceptInvitation() {
  const token = new URLSearchParams(search.value).get("token") ?? "";
  const joined = useSignal<Membership | null>(null);
  const error = useSignal<ApiError | null>(null);
  const busy = useSignal(false);

  async function accept() {
    busy.value = true;
    error.value = null;
    try {
      const m = await sendJson<Membership>("POST", "/api/v1/invitations/accept", { token });
      me.value = await getJson<Me>("/api/v1/me");
      chooseTenant(m.tenant_id);
      joined.value = m;
    } catch (e) {
      error.value = e instanceof ApiError ? e : new ApiError(0, "network", String(e));
    } finally {
      busy.value = false;
    }
  }

  const m = joined.value;
  return (
    <>
      <h1>Accept an invitation</h1>
      {m ? (
        <p role="status">
          You joined <strong>{m.tenant_name}</strong> as {m.role}. <a href="/">Go to its overview</a>.
        </p>
      ) : !token ? (
        <p>This link has no invitation in it: open the link from the e-mail again.</p>
      ) : (
        <>
          <p>
            You are signed in as <strong>{me.value?.user.email}</strong>. The invitation must be for this address, and
            the address confirmed.
          </p>
          <button type="button" onClick={accept} disabled={busy.value}>
            Accept the invitation
          </button>
        </>
      )}
      <ErrorBox error={error.value} />
    </>
  );
}

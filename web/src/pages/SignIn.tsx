// Sign-in: e-mail and password, then the authenticator code when the account has TOTP on (the
// api answers `totp_required`, and the same request is sent again with `totp_code`).
import { useSignal } from "@preact/signals";
import { ApiError, call } from "../lib/api";
import { setSession, type Tokens } from "../lib/session";
import { FieldMessage } from "./parts";

export function SignIn() {
  const email = useSignal("");
  const password = useSignal("");
  const code = useSignal("");
  const needsCode = useSignal(false);
  const error = useSignal<ApiError | null>(null);
  const busy = useSignal(false);

  async function submit(e: Event) {
    e.preventDefault();
    busy.value = true;
    error.value = null;
    try {
      const body: Record<string, string> = { email: email.value, password: password.value };
      if (needsCode.value) body.totp_code = code.value.trim();
      const res = await call("POST", "/api/v1/auth/login", { body, anonymous: true });
      setSession((await res.json()) as Tokens);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(0, "network", "The api cannot be reached.");
      if (e.code === "totp_required") {
        needsCode.value = true;
        error.value = null;
      } else {
        error.value = e;
      }
    } finally {
      busy.value = false;
    }
  }

  const err = error.value;
  return (
    <main id="main" class="sign-in">
      <h1>Sign in to Switchboard</h1>
      <form onSubmit={submit} noValidate>
        <label for="email">E-mail</label>
        <input
          id="email"
          type="email"
          autocomplete="username"
          required
          value={email.value}
          onInput={(e) => (email.value = (e.target as HTMLInputElement).value)}
          aria-describedby={err?.field("email") ? "email-error" : undefined}
        />
        <FieldMessage id="email-error" error={err} field="email" />
        <label for="password">Password</label>
        <input
          id="password"
          type="password"
          autocomplete="current-password"
          required
          value={password.value}
          onInput={(e) => (password.value = (e.target as HTMLInputElement).value)}
        />
        <FieldMessage id="password-error" error={err} field="password" />
        {needsCode.value && (
          <>
            <label for="totp">Authenticator code</label>
            <input
              id="totp"
              inputMode="numeric"
              autocomplete="one-time-code"
              pattern="[0-9]*"
              required
              autoFocus
              value={code.value}
              onInput={(e) => (code.value = (e.target as HTMLInputElement).value)}
            />
            <p class="hint">Two-factor authentication is on for this account.</p>
          </>
        )}
        {err && err.errors.length === 0 && (
          <p class="error" role="alert">
            {err.code === "invalid_credentials"
              ? "The e-mail address or password is wrong."
              : err.code === "totp_invalid"
                ? "That code is wrong or has expired; try the current one."
                : err.detail}
          </p>
        )}
        <button type="submit" disabled={busy.value}>
          {busy.value ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

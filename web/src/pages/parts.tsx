// Small pieces the pages share.
import type { ComponentChildren } from "preact";
import type { ApiError } from "../lib/api";

/// The API's message for one field, announced to screen readers.
export function FieldMessage({ id, error, field }: { id: string; error: ApiError | null; field: string }) {
  const message = error?.field(field);
  return message ? (
    <p id={id} class="error" role="alert">
      {message}
    </p>
  ) : null;
}

/// An API error not tied to a field (and every field error, for fields the form lacks).
export function ErrorBox({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <p>{error.detail}</p>
      {error.errors.length > 0 && (
        <ul>
          {error.errors.map((e) => (
            <li key={e.field}>
              <code>{e.field}</code>: {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Card({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="card" aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

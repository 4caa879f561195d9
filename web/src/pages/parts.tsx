// Small pieces the pages share.
import type { Signal } from "@preact/signals";
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

/// Previous and next over server pages: `cursors` holds the cursor of every page up to this
/// one ("" for the first), `next` the server's `next_cursor`.
export function Pager({ cursors, next }: { cursors: Signal<string[]>; next: string | null | undefined }) {
  return (
    <div class="pager">
      <button
        type="button"
        disabled={cursors.value.length <= 1}
        onClick={() => (cursors.value = cursors.value.slice(0, -1))}
      >
        Previous page
      </button>
      <span>Page {cursors.value.length}</span>
      <button type="button" disabled={!next} onClick={() => next && (cursors.value = [...cursors.value, next])}>
        Next page
      </button>
    </div>
  );
}

// Explain this charge: one call from the ledger in plain words. The request id, the model and
// the provider that answered, every provider entry tried and its outcome, the price-book row in
// force then and the arithmetic (tokens × price per million, each kind rounded up to the micro
// as the gateway charges), the hold taken at admission against what it settled to, and the
// budgets the charge counted against.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { ApiError, getJson } from "../lib/api";
import { count, usdExact } from "../lib/format";
import { path } from "../lib/router";
import { tenant, tenantPath } from "../lib/session";
import { formatInstant } from "../lib/time";
import type { UsageEvent } from "./Calls";
import { Card, ErrorBox } from "./parts";

interface Line {
  tokens: number;
  micros_per_mtok: number;
  micros: number;
}

interface Explanation {
  event: UsageEvent;
  hops: { provider: string; status: string }[];
  price: {
    provider: string;
    model: string;
    effective_from: string;
    input_micros_per_mtok: number;
    cached_input_micros_per_mtok: number;
    output_micros_per_mtok: number;
  } | null;
  arithmetic: {
    input: Line;
    cached_input: Line;
    output: Line;
    total_micros: number;
    matches_charge: boolean;
  } | null;
  reserved_micros: number | null;
  settled_micros: number;
  budgets: { id: string; scope: string; scope_id: string | null; period: string; limit_micros: number }[];
}

const OUTCOMES: Record<string, string> = {
  ok: "answered",
  upstream_error: "the provider failed",
  interrupted: "the stream was cut off",
  refused: "refused before reaching a provider",
};

function ArithmeticLine({ name, line }: { name: string; line: Line }) {
  return (
    <tr>
      <th scope="row">{name}</th>
      <td class="num">{count(line.tokens)} tokens</td>
      <td class="num">× {usdExact(line.micros_per_mtok)} per million</td>
      <td class="num">= {usdExact(line.micros)}</td>
    </tr>
  );
}

export function Explain() {
  const zone = tenant.value?.time_zone ?? "UTC";
  const eventId = path.value.split("/").pop() ?? "";
  const data = useSignal<Explanation | null>(null);
  const error = useSignal<ApiError | null>(null);

  useEffect(() => {
    let stale = false;
    getJson<Explanation>(tenantPath(`/usage/events/${encodeURIComponent(eventId)}`))
      .then((x) => !stale && (data.value = x))
      .catch((e) => (error.value = e instanceof ApiError ? e : null));
    return () => {
      stale = true;
    };
  }, [eventId]);

  const x = data.value;
  const e = x?.event;
  return (
    <>
      <h1>Explain this charge</h1>
      <p class="hint">
        <a href="/usage/calls">Back to the calls</a>
      </p>
      <ErrorBox error={error.value} />
      {x && e && (
        <>
          <Card title="The call">
            <dl class="facts">
              <dt>Request id</dt>
              <dd>
                <code data-testid="request-id">{e.request_id ?? "not recorded (an older call)"}</code>
              </dd>
              <dt>When ({zone})</dt>
              <dd>{formatInstant(zone, e.occurred_at)}</dd>
              <dt>Model</dt>
              <dd>{e.model}</dd>
              <dt>Provider that answered</dt>
              <dd>{e.provider}</dd>
              <dt>Outcome</dt>
              <dd>{OUTCOMES[e.status] ?? e.status}</dd>
              <dt>Latency</dt>
              <dd>{e.latency_ms === null ? "—" : `${count(e.latency_ms)} ms`}</dd>
              <dt>Charged</dt>
              <dd data-testid="charged">{usdExact(e.cost_micros)}</dd>
            </dl>
          </Card>
          <Card title="Providers tried">
            {x.hops.length === 0 ? (
              <p>No hops were recorded for this call.</p>
            ) : (
              <ol>
                {x.hops.map((h, i) => (
                  <li key={i}>
                    <code>{h.provider}</code>: {h.status === "ok" ? "answered" : h.status}
                  </li>
                ))}
              </ol>
            )}
          </Card>
          <Card title="Price and arithmetic">
            {x.price && x.arithmetic ? (
              <>
                <p>
                  The price book's entry for <code>{x.price.model}</code> at <code>{x.price.provider}</code>, in force
                  since {formatInstant(zone, x.price.effective_from)}. Each kind of token is rounded up to the
                  millionth of a dollar on its own.
                </p>
                <table data-testid="arithmetic">
                  <caption>Tokens × price per million tokens</caption>
                  <tbody>
                    <ArithmeticLine name="Input (not cached)" line={x.arithmetic.input} />
                    <ArithmeticLine name="Cached input" line={x.arithmetic.cached_input} />
                    <ArithmeticLine name="Output" line={x.arithmetic.output} />
                    <tr>
                      <th scope="row">Total</th>
                      <td colSpan={2} />
                      <td class="num">
                        <strong>= {usdExact(x.arithmetic.total_micros)}</strong>
                      </td>
                    </tr>
                  </tbody>
                </table>
                <p role="note">
                  {x.arithmetic.matches_charge
                    ? `This is exactly what the call was charged (${usdExact(e.cost_micros)}).`
                    : `The call was charged ${usdExact(e.cost_micros)}, not this total: the ledger counts such a mismatch for the operators.`}
                </p>
              </>
            ) : (
              <p>The price book had no price for this model then, so the call was charged nothing.</p>
            )}
          </Card>
          <Card title="Hold and settlement">
            <p>
              {x.reserved_micros === null
                ? "No hold was recorded at admission (a refused or an older call)."
                : `At admission the gateway held ${usdExact(x.reserved_micros)} against the budgets (its estimate).`}{" "}
              It settled to {usdExact(x.settled_micros)}, the call's cost.
            </p>
          </Card>
          <Card title="Budgets it counted against">
            {x.budgets.length === 0 ? (
              <p>No budget covers this call.</p>
            ) : (
              <ul>
                {x.budgets.map((b) => (
                  <li key={b.id}>
                    {b.scope === "tenant" ? "The tenant" : `${b.scope.replace("_", " ")} ${b.scope_id?.slice(0, 8) ?? ""}…`},{" "}
                    {b.period}: limit {usdExact(b.limit_micros)}
                  </li>
                ))}
              </ul>
            )}
          </Card>
        </>
      )}
    </>
  );
}

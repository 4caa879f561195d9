// The dashboard in a real browser (Debian's Chromium through playwright-core, which never
// downloads one), against a whole platform started with the demo data:
//
//   sign-in → overview → a gateway call and a budget alert show on the overview without
//   reloading → create an API key (its secret once) → it works at the gateway → search keys
//   → revoke it → the gateway refuses it → usage explorer and its CSV → a call's charge
//   explained (from the explorer's row to its calls) → days in a far time
//   zone → tenant switcher (another zone, a viewer's rights) → audit log (filters, pages) → a
//   run streamed live → two browsers approve its tool call (one wins, the other is told who
//   decided) → runs filtered, one cancelled → sign out → sign in with TOTP → an invitation accepted
//   from its e-mailed link.
//
// Every page is checked by axe-core (no serious or critical violation) and photographed into
// target/browser/. The pages run under the api's real CSP: a violation fails the test.
//
//   node web/tests/dashboard.mjs            (SWITCHBOARD_BIN, CHROMIUM_PATH to override)
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startStack } from "./stack.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const shots = join(root, "target/browser");
mkdirSync(shots, { recursive: true });
const binary = process.env.SWITCHBOARD_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug/switchboard");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const results = [];
async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok    ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL  ${name}\n${e.stack ?? e}`);
    throw e;
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function eventually(what, fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not happen within ${ms} ms${last ? `: ${last}` : ""}`);
}

/// axe-core in the page (evaluated by the DevTools protocol, so the page's CSP still holds).
async function accessible(page, name) {
  const violations = await page.evaluate(`(async () => {
    if (!window.axe) { ${axeSource}\n }
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5) }));
  })()`);
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of violations) console.log(`      axe ${name}: ${v.impact} ${v.id}: ${v.help} [${v.nodes.join(", ")}]`);
  assert(bad.length === 0, `${name}: ${bad.length} serious or critical accessibility violations`);
}

async function shoot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function chat(stack, key) {
  const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: stack.models[0], messages: [{ role: "user", content: "hello from the browser test" }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

/// RFC 6238 with the defaults the api uses (SHA-1, 6 digits, 30 s).
function totp(base32, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

async function api(stack, method, path, token, body) {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { authorization: token ? `Bearer ${token}` : "", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const stack = await startStack(binary);
let signedInAt = Date.now();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const clean = () => assert(problems.length === 0, `the page reported: ${problems.join("\n")}`);
  const url = (p) => `${stack.apiUrl}${p}`;

  await step("the root sends a signed-out visitor to sign in", async () => {
    await page.goto(url("/"));
    await page.getByRole("heading", { name: "Sign in to Switchboard" }).waitFor();
    assert(new URL(page.url()).pathname === "/sign-in", page.url());
    // Keyboard focus is visible: Tab reaches the e-mail field and it shows an outline.
    await page.keyboard.press("Tab");
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { id: el.id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
    });
    assert(focus.id === "email" && focus.outline !== "none" && focus.width >= 2, `focus: ${JSON.stringify(focus)}`);
    await accessible(page, "sign-in");
    await shoot(page, "sign-in");
  });

  await step("a wrong password is refused with a message", async () => {
    await page.getByLabel("E-mail").fill(stack.admin.email);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "wrong" }).waitFor();
  });

  await step("the demo admin signs in and sees the overview", async () => {
    await page.getByLabel("Password").fill(stack.admin.password);
    await page.getByLabel("Password").press("Enter");
    signedInAt = Date.now();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByRole("heading", { name: "Budgets" }).waitFor();
    await page.getByText("Time zone:").waitFor();
    await page.getByText("Live: figures update").waitFor();
    await accessible(page, "overview");
    clean();
    await shoot(page, "overview");
  });

  await step("a gateway call shows on the overview without reloading", async () => {
    const before = Number((await page.getByTestId("requests-today").textContent()).replace(/\D/g, ""));
    assert((await chat(stack, stack.apiKey)) === 200, "the demo key's call failed");
    await eventually("the request count to grow", async () => {
      const now = Number((await page.getByTestId("requests-today").textContent()).replace(/\D/g, ""));
      return now > before;
    }, 30_000);
    await shoot(page, "overview-live");
  });

  await step("a budget alert shows on the overview as it happens", async () => {
    // The tenant's budget set so that its spend sits just under 50 % and alerting only (a
    // blocking one refuses a call whose estimate does not fit): the next calls cross it.
    const { access_token: token } = JSON.parse(await page.evaluate(() => sessionStorage.getItem("sb.tokens")));
    const tenant = stack.sql("SELECT id FROM tenants WHERE slug = 'demo'");
    const budgets = await api(stack, "GET", `/api/v1/tenants/${tenant}/budgets`, token);
    const budget = budgets.find((b) => b.scope === "tenant" && b.period === "monthly");
    assert(budget, `a monthly tenant budget: ${JSON.stringify(budgets)}`);
    const path = `/api/v1/tenants/${tenant}/budgets/${budget.id}`;
    await api(stack, "PATCH", path, token, { limit_micros: 2 * budget.spent_micros + 100, action: "alert" });
    try {
      await eventually("a budget alert on the overview", async () => {
        await chat(stack, stack.apiKey);
        return (await page.getByRole("alert").filter({ hasText: "Budget alert" }).count()) > 0;
      }, 30_000);
      await shoot(page, "overview-budget-alert");
    } finally {
      await api(stack, "PATCH", path, token, { limit_micros: budget.limit_micros, action: budget.action });
    }
  });

  let secret;
  await step("an API key is created and its secret shown once", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    // The api's 422 names the field; the form shows it there.
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("#key-name-error").filter({ hasText: "characters" }).waitFor();
    assert((await page.getByLabel("Name", { exact: true }).getAttribute("aria-invalid")) === "true", "the name is not marked invalid");
    await page.getByLabel("Name", { exact: true }).fill("browser-test");
    await page.getByLabel("Name", { exact: true }).press("Enter");
    secret = (await page.getByTestId("new-secret").textContent()).trim();
    assert(/^sb_live_\w+$/.test(secret), `a secret: ${secret}`);
    await page.getByRole("cell", { name: "browser-test", exact: true }).waitFor();
    await accessible(page, "api-keys");
    await shoot(page, "api-keys-created");
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: stack.apiUrl });
    await page.getByRole("button", { name: "Copy key" }).click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    assert((await page.evaluate(() => navigator.clipboard.readText())) === secret, "the clipboard holds the secret");
    await page.getByRole("button", { name: "Done" }).click();
    const html = await page.content();
    assert(!html.includes(secret), "the secret is still on the page after Done");
    await page.reload();
    await page.getByRole("cell", { name: "browser-test", exact: true }).waitFor();
    assert(!(await page.content()).includes(secret), "the secret came back after a reload");
    clean();
  });

  await step("the new key works at the gateway", async () => {
    assert((await chat(stack, secret)) === 200, "the new key's call failed");
  });

  await step("keys are searched on the server", async () => {
    await page.getByLabel("Name or prefix").fill("browser");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByText("matching “browser”").waitFor();
    // The caption changes at once; the rows when the server's page arrives.
    await eventually("only the matching key to be listed", async () => (await page.locator("tbody tr").count()) === 1, 5_000);
    await page.getByRole("cell", { name: "browser-test", exact: true }).waitFor();
    await page.getByLabel("Name or prefix").fill("");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("cell", { name: "demo", exact: true }).waitFor();
  });

  await step("the key is revoked and the gateway refuses it", async () => {
    // With the keyboard: Enter on the button, then on its confirmation.
    await page.getByRole("button", { name: "Revoke browser-test" }).press("Enter");
    await page.getByRole("button", { name: "Confirm revoking browser-test" }).press("Enter");
    await eventually("the key to leave the active list", async () => (await page.getByRole("cell", { name: "browser-test", exact: true }).count()) === 0);
    await eventually("the gateway to refuse the key", async () => (await chat(stack, secret)) === 401, 5_000);
    await page.getByLabel("State").selectOption("revoked");
    await page.getByRole("cell", { name: "browser-test", exact: true }).waitFor();
    await shoot(page, "api-keys-revoked");
  });

  await step("the keys list pages on the server", async () => {
    // 26 more keys: 27 active with the demo key (browser-test is revoked), two pages of 25.
    const { access_token: token } = JSON.parse(await page.evaluate(() => sessionStorage.getItem("sb.tokens")));
    const tenant = stack.sql("SELECT id FROM tenants WHERE slug = 'demo'");
    for (let i = 0; i < 26; i++) await api(stack, "POST", `/api/v1/tenants/${tenant}/api-keys`, token, { name: `bulk-${String(i).padStart(2, "0")}` });
    await page.reload();
    await page.getByRole("cell", { name: "bulk-25", exact: true }).waitFor();
    assert((await page.locator("tbody tr").count()) === 25, "a page of 25");
    const asked = page.waitForRequest((r) => r.url().includes("/api-keys?") && r.url().includes("cursor="));
    await page.getByRole("button", { name: "Next page" }).click();
    assert(new URL((await asked).url()).searchParams.get("limit") === "25", "the page size is the server's limit");
    await page.getByRole("cell", { name: "demo", exact: true }).waitFor();
    await page.getByText("Page 2").waitFor();
    assert((await page.locator("tbody tr").count()) === 2, "the last 2 on page 2");
    assert(await page.getByRole("button", { name: "Next page" }).isDisabled(), "no page 3");
    await page.getByRole("button", { name: "Previous page" }).click();
    await page.getByRole("cell", { name: "bulk-25", exact: true }).waitFor();
  });

  await step("the usage explorer shows today's calls in the tenant's zone and exports CSV", async () => {
    await page.getByRole("link", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "Usage" }).waitFor();
    await page.getByText(/Spend by day, .* \(.+\)/).waitFor();
    await eventually("a row with requests", async () => (await page.locator("tbody tr th[scope=row]").count()) > 0);
    await page.getByLabel("Group by").selectOption("api_key");
    await page.getByRole("rowheader", { name: /^demo \(sb_live_/ }).waitFor();
    await page.getByRole("rowheader", { name: /^browser-test \(sb_live_/ }).waitFor();
    await page.getByLabel("Group by").selectOption("model");
    await page.getByRole("rowheader", { name: stack.models[0] }).waitFor();
    await accessible(page, "usage");
    await shoot(page, "usage");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const csv = readFileSync(await download.path(), "utf8");
    assert(csv.startsWith("model,requests,"), `the CSV keeps the grouping: ${csv.slice(0, 80)}`);
    assert(csv.includes(stack.models[0]), "the CSV has the model's row");
    clean();
  });

  await step("a call's charge is explained: request id, hops, price and arithmetic", async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: stack.models[0], messages: [{ role: "user", content: "explain me" }] }),
    });
    await res.arrayBuffer();
    assert(res.status === 200, `the demo key's call: ${res.status}`);
    const requestId = res.headers.get("x-request-id");
    assert(requestId, "the gateway answered with an x-request-id");
    // From the usage explorer's model row to that model's calls, newest first.
    await page.getByRole("link", { name: stack.models[0], exact: true }).click();
    await page.getByRole("heading", { name: "Calls" }).waitFor();
    await page.getByText(`Calls to ${stack.models[0]}`).waitFor();
    // The ledger records the call a moment after it answers.
    await eventually("the call to be listed", async () => {
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByRole("link", { name: /^Explain the charge/ }).first().waitFor({ timeout: 2_000 });
      await page.getByRole("link", { name: /^Explain the charge/ }).first().click();
      await page.getByTestId("request-id").waitFor({ timeout: 5_000 });
      if ((await page.getByTestId("request-id").textContent()).trim() === requestId) return true;
      await page.goBack();
      return false;
    });
    await page.getByRole("heading", { name: "Explain this charge" }).waitFor();
    await page.getByText(`${stack.models[0]}`, { exact: true }).first().waitFor();
    const arithmetic = await page.getByTestId("arithmetic").textContent();
    assert(/tokens/.test(arithmetic) && /per million/.test(arithmetic) && /= \$/.test(arithmetic), `the arithmetic: ${arithmetic}`);
    await page.getByText("This is exactly what the call was charged").waitFor();
    await page.getByText(/At admission the gateway held \$/).waitFor();
    await page.getByRole("region", { name: "Budgets it counted against" }).getByText("The tenant,", { exact: false }).first().waitFor();
    await accessible(page, "explain");
    await shoot(page, "explain");
    await page.getByRole("link", { name: "Back to the calls" }).click();
    await page.getByRole("heading", { name: "Calls" }).waitFor();
    await accessible(page, "calls");
    await shoot(page, "calls");
    await page.getByRole("link", { name: "Back to the usage explorer" }).click();
    await page.getByRole("heading", { name: "Usage" }).waitFor();
    clean();
  });

  await step("days are the tenant's days: a zone 14 hours ahead of UTC", async () => {
    // Kiritimati is UTC+14 all year, so its "today" starts at 10:00 UTC the day before and
    // differs from UTC's date for 14 hours of every day.
    const zone = "Pacific/Kiritimati";
    stack.sql(`UPDATE tenants SET time_zone = '${zone}'`);
    const today = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
    const [y, m, d] = today.split("-").map(Number);
    const midnight = new Date(Date.UTC(y, m - 1, d) - 14 * 3600_000).toISOString();
    const asked = page.waitForRequest((r) => r.url().includes("/usage?") && r.url().includes("group_by=day"));
    await page.reload();
    const url = new URL((await asked).url());
    await page.getByText(`Time zone: ${zone}`).waitFor();
    assert(url.searchParams.get("to") === new Date(Date.parse(midnight) + 86_400_000).toISOString(), `the range ends at midnight after today in ${zone}: ${url}`);
    await page.getByRole("rowheader", { name: today }).waitFor();
    await page.getByLabel(`Last day (${zone})`).waitFor();
    await shoot(page, "usage-kiritimati");
    stack.sql("UPDATE tenants SET time_zone = 'UTC'");
  });

  await step("the tenant switcher moves to another tenant, its zone and its role", async () => {
    // A second tenant where the demo admin is only a viewer (made in SQL: no API adds a
    // membership without an invitation by e-mail).
    stack.sql(`WITH t AS (INSERT INTO tenants (id, name, slug, time_zone)
                          VALUES (gen_random_uuid(), 'Second tenant', 'second', 'Europe/Berlin') RETURNING id)
               INSERT INTO memberships (tenant_id, user_id, role)
               SELECT t.id, u.id, 'viewer' FROM t, users u WHERE u.email = '${stack.admin.email}'`);
    await page.reload();
    await page.getByLabel("Tenant").selectOption({ label: "Second tenant (viewer)" });
    await page.getByText("Time zone: Europe/Berlin").waitFor();
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByText("No keys here.").waitFor();
    assert((await page.getByRole("button", { name: "Create key" }).count()) === 0, "a viewer is offered to create keys");
    await accessible(page, "api-keys-viewer");
    await shoot(page, "tenant-switcher");
    await page.getByLabel("Tenant").selectOption({ label: "Demo (owner)" });
    await page.getByText("Time zone: UTC").waitFor();
    await page.getByRole("cell", { name: "bulk-25", exact: true }).waitFor();
  });

  await step("a deep link loads the page it names", async () => {
    await page.goto(url("/api-keys"));
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });

  await step("the audit log is filtered by action and actor and paged on the server", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.getByRole("cell", { name: "api_key.create", exact: true }).first().waitFor();
    await accessible(page, "audit-log");
    await shoot(page, "audit-log");
    // The one revocation, further back than the first page.
    await page.getByLabel("Action").fill("api_key.revoke");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("“api_key.revoke” entries").waitFor();
    await eventually("only the revocation", async () => {
      const actions = await page.locator("tbody tr td:nth-child(3)").allTextContents();
      return actions.length === 1 && actions[0] === "api_key.revoke";
    }, 5_000);
    // The 27 keys made above (browser-test and 26 bulk ones): two pages of 25.
    await page.getByLabel("Action").fill("api_key.create");
    const asked = page.waitForRequest((r) => r.url().includes("/audit-log?") && r.url().includes("action=api_key.create"));
    await page.getByRole("button", { name: "Filter" }).click();
    assert(new URL((await asked).url()).searchParams.get("limit") === "25", "the page size is the server's limit");
    await page.getByText("“api_key.create” entries").waitFor();
    await eventually("a full first page of creations", async () => {
      const actions = await page.locator("tbody tr td:nth-child(3)").allTextContents();
      return actions.length === 25 && actions.every((a) => a === "api_key.create");
    }, 5_000);
    await page.getByLabel("Actor").selectOption({ label: stack.admin.email });
    await page.getByText(`by ${stack.admin.email}`).waitFor();
    const paged = page.waitForRequest((r) => r.url().includes("/audit-log?") && r.url().includes("cursor="));
    await page.getByRole("button", { name: "Next page" }).click();
    const next = new URL((await paged).url()).searchParams;
    assert(next.get("action") === "api_key.create" && next.get("actor"), `the next page keeps the filters: ${next}`);
    await page.getByText("Page 2").waitFor();
    await eventually("the rest on page 2", async () => {
      const actions = await page.locator("tbody tr td:nth-child(3)").allTextContents();
      return actions.length >= 2 && actions.length < 25 && actions.every((a) => a === "api_key.create");
    }, 5_000);
    clean();
  });

  let runUrl;
  await step("a run of the demo agent streams its steps live and waits for approval", async () => {
    await page.getByRole("link", { name: "Runs" }).click();
    await page.getByRole("heading", { name: "Runs" }).waitFor();
    await page.getByLabel("Agent to run").selectOption({ label: "demo-assistant" });
    await page.getByLabel("Input").fill('tool write_file {"path": "hello.txt", "content": "hi from the browser"}\nsay I wrote hello.txt');
    await page.getByRole("button", { name: "Start run" }).click();
    await page.getByRole("heading", { name: "Run", exact: true }).waitFor();
    runUrl = page.url();
    // Nothing reloads the page: the statuses and steps arrive over socket.io.
    await page.getByTestId("run-status").filter({ hasText: "Waiting for approval" }).waitFor();
    await page.getByTestId("run-events").getByText("approval.requested").waitFor();
    const args = await page.getByTestId("arguments").textContent();
    assert(args.includes('"path": "hello.txt"') && args.includes("hi from the browser"), `the exact arguments: ${args}`);
    const first = await page.getByTestId("expiry").textContent();
    assert(/left/.test(first), `a countdown: ${first}`);
    await eventually("the countdown to count", async () => (await page.getByTestId("expiry").textContent()) !== first, 3_000);
    await accessible(page, "run-waiting");
    await shoot(page, "run-waiting");
    clean();
  });

  await step("two people approve at once: one wins, the other sees who decided", async () => {
    const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      const page2 = await other.newPage();
      await page2.goto(url("/approvals"));
      await page2.getByLabel("E-mail").fill(stack.admin.email);
      await page2.getByLabel("Password").fill(stack.admin.password);
      await page2.getByLabel("Password").press("Enter");
      await page2.getByRole("link", { name: "Approvals" }).click();
      await page2.getByRole("heading", { name: "Approvals" }).waitFor();
      await page2.getByTestId("arguments").filter({ hasText: "hi from the browser" }).waitFor();
      await accessible(page2, "approvals");
      await shoot(page2, "approvals");
      // The first browser approves on the run's page; the second, still showing it pending, too.
      await page.getByRole("button", { name: "Approve: Tool call write_file" }).click();
      await page.getByTestId("run-status").filter({ hasText: "Succeeded" }).waitFor();
      await page2.getByRole("button", { name: "Approve: Tool call write_file" }).click();
      await page2.getByRole("alert").filter({ hasText: `Someone else decided first. Approved by ${stack.admin.email}` }).waitFor();
      await shoot(page2, "approvals-lost");
    } finally {
      await other.close();
    }
    await page.getByTestId("run-events").getByText("approval.decided").waitFor();
    await page.getByRole("cell", { name: /^write_file / }).waitFor();
    await page.getByText("I wrote hello.txt").first().waitFor();
    await shoot(page, "run-succeeded");
    clean();
  });

  await step("runs are filtered by status, agent and wait, and one is cancelled", async () => {
    await page.getByRole("link", { name: "Back to the runs" }).click();
    await page.getByLabel("Input").fill('tool bash {"command": "echo wait"}');
    await page.getByRole("button", { name: "Start run" }).click();
    await page.getByTestId("run-status").filter({ hasText: "Waiting for approval" }).waitFor();
    await page.getByRole("link", { name: "Back to the runs" }).click();
    await page.getByLabel("Status").selectOption("waiting_approval");
    await eventually("one run waiting", async () => (await page.locator("tbody tr").count()) === 1 && (await page.getByRole("cell", { name: "Waiting for approval" }).count()) === 1, 5_000);
    await page.getByLabel("Agent", { exact: true }).selectOption({ label: "demo-assistant" });
    await page.getByLabel("Waiting for approval longer than (minutes)").fill("60");
    const asked = page.waitForRequest((r) => r.url().includes("/runs?") && r.url().includes("waiting_longer_than_seconds=3600"));
    await page.getByRole("button", { name: "Filter" }).click();
    const q = new URL((await asked).url()).searchParams;
    assert(q.get("status") === "waiting_approval" && q.get("agent_id"), `the filters go to the server: ${q}`);
    await page.getByText("No runs here.").waitFor();
    await accessible(page, "runs");
    await shoot(page, "runs");
    await page.getByLabel("Waiting for approval longer than (minutes)").fill("");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("cell", { name: "Waiting for approval" }).locator("..").getByRole("link").click();
    await page.getByRole("button", { name: "Cancel run" }).click();
    await page.getByTestId("run-status").filter({ hasText: "Cancelled" }).waitFor();
    assert((await page.getByRole("button", { name: "Cancel run" }).count()) === 0, "an ended run offers to cancel");
    clean();
  });

  await step("the session outlives its access token: live updates and pages keep working", async () => {
    // ACCESS_TOKEN_SECONDS is 60 in this stack: the api drops the socket when the token it
    // connected with expires, and refuses the expired token on the REST routes.
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByTestId("requests-today").waitFor();
    const wait = signedInAt + 63_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await page.getByText("Live: figures update").waitFor({ timeout: 40_000 });
    const requests = async () => Number((await page.getByTestId("requests-today").textContent()).replace(/\D/g, ""));
    const before = await requests();
    assert((await chat(stack, stack.apiKey)) === 200, "the demo key's call failed");
    await eventually("the request count to grow after the token expired", async () => (await requests()) > before, 30_000);
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("cell", { name: "bulk-25", exact: true }).waitFor();
    clean();
  });

  await step("sign-out ends the session", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Switchboard" }).waitFor();
    await page.goto(url("/"));
    await page.getByRole("heading", { name: "Sign in to Switchboard" }).waitFor();
  });

  let totpSecret;
  await step("an account with TOTP signs in with its code", async () => {
    const who = stack.platformAdmin.email ? stack.platformAdmin : stack.admin;
    const session = await api(stack, "POST", "/api/v1/auth/login", null, { email: who.email, password: who.password });
    const enrolment = await api(stack, "POST", "/api/v1/auth/totp/enroll", session.access_token, { password: who.password });
    await api(stack, "POST", "/api/v1/auth/totp/verify", session.access_token, { code: totp(enrolment.secret) });
    totpSecret = enrolment.secret;
    // A code works once: wait for the next 30-second step.
    await new Promise((r) => setTimeout(r, 30_000 - (Date.now() % 30_000) + 500));
    await page.getByLabel("E-mail").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("Authenticator code").waitFor();
    await accessible(page, "sign-in-totp");
    await shoot(page, "sign-in-totp");
    await page.getByLabel("Authenticator code").fill(totp(enrolment.secret));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    clean();
  });
  await step("an invitation's link is accepted by the signed-in invitee", async () => {
    // The account signed in above is invited to the demo tenant as a viewer; the e-mail's link
    // opens the accept page.
    const who = stack.platformAdmin;
    assert(who.email, "the demo printed a platform admin to invite");
    const admin = await api(stack, "POST", "/api/v1/auth/login", null, { email: stack.admin.email, password: stack.admin.password });
    const tenant = stack.sql("SELECT id FROM tenants WHERE slug = 'demo'");
    await api(stack, "POST", `/api/v1/tenants/${tenant}/invitations`, admin.access_token, { email: who.email, role: "viewer" });
    const link = await eventually("the invitation e-mail", async () => {
      const mail = stack.mail.find((m) => m.includes("/accept-invitation?token="));
      return mail?.match(/https?:\/\/\S+\/accept-invitation\?token=(\S+)/)?.[1];
    });
    // Opened signed out, the link goes through sign-in and comes back.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Switchboard" }).waitFor();
    await page.goto(url(`/accept-invitation?token=${link}`));
    await page.getByRole("heading", { name: "Sign in to Switchboard" }).waitFor();
    const next = new URL(page.url()).searchParams.get("next");
    assert(next === `/accept-invitation?token=${link}`, `sign-in keeps the link: ${page.url()}`);
    await page.getByLabel("E-mail").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("Authenticator code").waitFor();
    // A code works once: the next 30-second step.
    await new Promise((r) => setTimeout(r, 30_000 - (Date.now() % 30_000) + 500));
    await page.getByLabel("Authenticator code").fill(totp(totpSecret));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Accept an invitation" }).waitFor();
    await page.getByText(`You are signed in as ${who.email}`).waitFor();
    await accessible(page, "accept-invitation");
    await shoot(page, "accept-invitation");
    await page.getByRole("button", { name: "Accept the invitation" }).click();
    await page.getByText("You joined Demo as viewer").waitFor();
    await page.getByRole("link", { name: "Go to its overview" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByLabel("Tenant").getByRole("option", { name: "Demo (viewer)" }).waitFor({ state: "attached" });
    // The link works once.
    await page.goto(url(`/accept-invitation?token=${link}`));
    await page.getByRole("button", { name: "Accept the invitation" }).click();
    await page.getByRole("alert").waitFor();
    clean();
  });
} catch {
  failed = true;
} finally {
  await browser.close();
  await stack.stop();
}
const passed = results.filter((r) => r.ok).length;
console.log(`Browser tests: ${passed} passed, ${results.length - passed} failed; screenshots in target/browser/`);
if (failed) {
  if (process.env.SB_BROWSER_VERBOSE === undefined) console.log(stack.output().split("\n").slice(-40).join("\n"));
  process.exit(1);
}

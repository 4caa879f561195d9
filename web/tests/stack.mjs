// A whole Switchboard for the browser tests: `switchboard serve all --demo` on free ports,
// against a fresh database and its own Redis key prefix, with the demo credentials it prints.
// `stop()` ends the process and drops the database and the keys.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function pgUrl(role, db) {
  return `postgres://${role}@127.0.0.1:5432/${db}`;
}

/// A minimal SMTP server that keeps every message (its body quoted-printable decoded), so a
/// test can follow the links the api mails (an invitation).
function mailSink() {
  const messages = [];
  const server = net.createServer((socket) => {
    let buffer = "";
    let data = null;
    const reply = (line) => socket.write(`${line}\r\n`);
    reply("220 sink");
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      let at;
      while ((at = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (data !== null) {
          if (line === ".") {
            const text = data.join("\n").replace(/=\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
            messages.push(text);
            data = null;
            reply("250 kept");
          } else data.push(line.startsWith("..") ? line.slice(1) : line);
        } else if (/^DATA/i.test(line)) {
          data = [];
          reply("354 go on");
        } else if (/^QUIT/i.test(line)) {
          reply("221 bye");
          socket.end();
        } else reply("250 ok");
      }
    });
    socket.on("error", () => undefined);
  });
  server.unref();
  return { server, messages };
}

/// Starts the platform; resolves once every service answers and the demo is seeded.
export async function startStack(binary) {
  const id = randomBytes(6).toString("hex");
  const db = `sb_browser_${id}`;
  const prefix = `sb_browser_${id}:`;
  const [gateway, api, worker, ledger, mock] = await Promise.all([1, 2, 3, 4, 5].map(freePort));
  const apiUrl = `http://127.0.0.1:${api}`;
  const mail = mailSink();
  const smtpPort = await new Promise((resolve) => mail.server.listen(0, "127.0.0.1", () => resolve(mail.server.address().port)));
  const env = {
    ...process.env,
    DATABASE_URL: pgUrl("switchboard_app", db),
    DATABASE_SYSTEM_URL: pgUrl("switchboard_system", db),
    DATABASE_OWNER_URL: pgUrl("postgres", db),
    REDIS_URL: process.env.SB_BROWSER_REDIS_URL ?? "redis://127.0.0.1:6379",
    REDIS_KEY_PREFIX: prefix,
    GATEWAY_PORT: String(gateway),
    API_PORT: String(api),
    AGENT_WORKER_PORT: String(worker),
    LEDGER_PORT: String(ledger),
    MOCK_LLM_PORT: String(mock),
    MOCK_LLM_URL: `http://127.0.0.1:${mock}/v1`,
    AGENT_GATEWAY_URL: `http://127.0.0.1:${gateway}`,
    CORS_ORIGINS: apiUrl,
    SMTP_HOST: "127.0.0.1",
    SMTP_PORT: String(smtpPort),
    LOG_LEVEL: process.env.SB_BROWSER_LOG_LEVEL ?? "warn",
    // The shortest the api allows, so the test sees access tokens expire under a session.
    ACCESS_TOKEN_SECONDS: "60",
  };
  delete env.PORT;
  const child = spawn(binary, ["serve", "all", "--demo"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => {
    err += d;
    if (process.env.SB_BROWSER_VERBOSE) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));

  const stack = {
    apiUrl,
    /// Runs SQL in the stack's database as its owner (for what no API changes, such as a
    /// tenant's time zone).
    sql: (statement) => execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qtAc", statement]).toString().trim(),
    gatewayUrl: `http://127.0.0.1:${gateway}`,
    /// Every e-mail the platform sent, as text.
    mail: mail.messages,
    output: () => out + err,
    async stop() {
      mail.server.close();
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      try {
        execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-qc", `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`], {
          stdio: "ignore",
        });
      } catch {
        // A database left behind is harmless; its name says where it came from.
      }
      try {
        const keys = execFileSync("redis-cli", ["--scan", "--pattern", `${prefix}*`]).toString().split("\n").filter(Boolean);
        for (let i = 0; i < keys.length; i += 500) execFileSync("redis-cli", ["del", ...keys.slice(i, i + 500)], { stdio: "ignore" });
      } catch {
        // As above.
      }
    },
  };

  // The credentials come before the services' addresses (seeding precedes serving).
  const deadline = Date.now() + 180_000;
  const field = (re) => out.match(re)?.[1];
  while (!/^api\s+http:\/\//m.test(out)) {
    if (child.exitCode !== null) throw new Error(`switchboard exited (${child.exitCode}):\n${out}\n${err}`);
    if (Date.now() > deadline) throw new Error(`switchboard did not start within 180 s:\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  stack.admin = { email: field(/tenant admin\s+(\S+)\s+password/), password: field(/tenant admin\s+\S+\s+password (\S+)/) };
  stack.platformAdmin = {
    email: field(/platform admin\s+(\S+)\s+password/),
    password: field(/platform admin\s+\S+\s+password (\S+)/),
  };
  stack.apiKey = field(/API key\s+(sb_\S+)/);
  stack.models = (field(/provider\s+.*\((.*)\)/) ?? "").split(", ").filter(Boolean);
  for (const [name, value] of Object.entries({ admin: stack.admin.password, apiKey: stack.apiKey })) {
    if (!value) throw new Error(`no ${name} in the demo's output:\n${out}`);
  }
  for (const url of [`${apiUrl}/health`, `${stack.gatewayUrl}/health`]) {
    while (!(await fetch(url).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer:\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return stack;
}

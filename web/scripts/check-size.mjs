// Fails the build when the dashboard's JavaScript and CSS, gzipped, pass the budget (150 KB:
// the limit, so that a page loads fast on a slow link and dependencies stay few).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const LIMIT = 150 * 1024;
const dir = new URL("../dist/", import.meta.url).pathname;
let total = 0;
for (const name of readdirSync(join(dir, "assets")).concat(["index.html"])) {
  const path = name === "index.html" ? join(dir, name) : join(dir, "assets", name);
  const size = gzipSync(readFileSync(path), { level: 9 }).length;
  total += size;
  console.log(`${(size / 1024).toFixed(1).padStart(7)} KB gz  ${name}`);
}
console.log(`${(total / 1024).toFixed(1).padStart(7)} KB gz  total (limit ${LIMIT / 1024} KB)`);
if (total > LIMIT) {
  console.error(`the dashboard is ${total - LIMIT} bytes over its gzipped budget`);
  process.exit(1);
}

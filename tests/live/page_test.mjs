// The inspection page in a real headless browser (Debian's chromium,
// driven by playwright-core): the tree appears, a restart shows up live
// without a reload, clicking a node shows its counters, a pool of 10,000
// children is collapsed into one row, nothing is fetched from elsewhere,
// and a foreign Host gets 403.
//
//   node page_test.mjs <live_page_server> [pool size]
//
// Exits 77 (CTest's skip) only when no browser is installed.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import http from "node:http";
import readline from "node:readline";

const server = process.argv[2];
const poolSize = process.argv[3] || "10000";
const browserPath = process.env.CHROMIUM ||
  ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
if (!browserPath) {
  console.log("SKIP: no chromium installed (scripts/install-deps.sh installs it)");
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  console.error("playwright-core is missing: run scripts/install-deps.sh (" + e.message + ")");
  process.exit(1);
}

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
  throw new Error(msg);
}

const child = spawn(server, [poolSize], { stdio: ["pipe", "pipe", "inherit"] });
const lines = readline.createInterface({ input: child.stdout });
const pending = [];
lines.on("line", (l) => { const w = pending.shift(); if (w) w(l); });
const nextLine = () => new Promise((resolve, reject) => {
  pending.push(resolve);
  setTimeout(() => reject(new Error("no reply from the server")), 60000);
});
const send = async (cmd) => { child.stdin.write(cmd + "\n"); return nextLine(); };

function get(port, path, host) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers: { Host: host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

let browser;
try {
  const first = await nextLine();
  const port = Number(first.split(" ")[1]);
  if (!port) fail("server said: " + first);
  const origin = `http://127.0.0.1:${port}`;

  // DNS rebinding: a page whose name resolves to us still names itself.
  if ((await get(port, "/", "evil.example:" + port)) !== 403) fail("foreign Host not refused");
  if ((await get(port, "/tree.json", `localhost:${port}`)) !== 200) fail("localhost refused");

  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage();
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) foreign.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  const t0 = Date.now();
  await page.goto(origin + "/");
  await page.waitForSelector('.node[data-path="/app/w"]', { timeout: 30000 });
  await page.waitForSelector("#conn.live", { timeout: 30000 });
  const loadMs = Date.now() - t0;
  await page.evaluate(() => { window.__sameDocument = 42; });

  // The tree: every fixed node, and the pool collapsed into one row.
  for (const p of ["/app", "/app/store", "/app/store/cache", "/app/store/loader", "/app/pool"]) {
    if (!(await page.$(`.node[data-path="${p}"]`))) fail("node missing: " + p);
  }
  const summary = await page.textContent('[data-pool="/app/pool"]');
  if (!summary || !summary.includes(poolSize + " children")) fail("pool not collapsed: " + summary);
  const drawn = await page.$$eval(".node", (n) => n.length);
  if (drawn > 100) fail(`${drawn} nodes drawn: the pool should be collapsed`);

  // A restart, live: the node flashes and its count moves, no reload.
  if ((await page.textContent('.node[data-path="/app/w"] .restarts')) !== "0") fail("restarts not 0");
  await send("crash w");
  await page.waitForFunction(() => {
    const n = document.querySelector('.node[data-path="/app/w"]');
    return n && n.querySelector(".restarts").textContent === "1" &&
      n.classList.contains("has-restarts");
  }, null, { timeout: 15000 });
  if ((await page.evaluate(() => window.__sameDocument)) !== 42) fail("the page reloaded");
  const log = await page.textContent("#log");
  if (!log.includes("failure /app/w: crash requested") || !log.includes("restart /app/w")) {
    fail("event log: " + log);
  }

  // A node's counters on click.
  await page.click('.node[data-path="/app/w"]');
  await page.waitForSelector('#details[data-path="/app/w"] dl', { timeout: 5000 });
  const details = await page.textContent("#details");
  for (const want of ["/app/w", "handled", "mailbox", "time in handlers", "restarts1",
                      "crash requested"]) {
    if (!details.replace(/\s+/g, "").includes(want.replace(/\s+/g, ""))) {
      fail(`details lack "${want}": ${details}`);
    }
  }

  // The pool opens a page of children on click.
  await page.click('[data-pool="/app/pool"]');
  await page.waitForSelector('.node[data-path="/app/pool/1"]', { timeout: 10000 });

  if (process.env.SHOT) await page.screenshot({ path: process.env.SHOT, fullPage: false });
  if (foreign.length) fail("fetched from elsewhere: " + foreign.join(", "));
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log(`page test: ok (tree of ${poolSize} pool children drawn in ${loadMs} ms)`);
} catch (e) {
  if (!process.exitCode) { console.error("FAIL: " + e.message); process.exitCode = 1; }
} finally {
  if (browser) await browser.close();
  child.stdin.end("quit\n");
  await new Promise((r) => child.on("exit", r));
}

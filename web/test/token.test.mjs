// Browser test of the page against a collector that needs a token (flowlog
// serve --readers), run by e2e/readers_e2e_test.go:
//
//	FLOWLOG_URL=http://127.0.0.1:PORT FLOWLOG_TOKEN=... FLOWLOG_EXPECT='{"rows":[...]}' node web/test/token.test.mjs
//
// Without a token the API answers 401: the page must open its "API token"
// prompt. Once the token is saved, the panels load with what the token may
// see (expect.rows: the flow ids of its networks, newest first), the prompt
// closes, and the token survives a reload (localStorage). Prints "PASS" at
// the end; exit status 0 means every check passed.
//
// Environment: FLOWLOG_URL, FLOWLOG_TOKEN, FLOWLOG_EXPECT (required),
// FLOWLOG_CHROMIUM (default /usr/bin/chromium), FLOWLOG_SCREENSHOT (PNG
// written at the end or at the first failure).

import { chromium } from "playwright-core";

const base = process.env.FLOWLOG_URL;
const token = process.env.FLOWLOG_TOKEN;
const expect = JSON.parse(process.env.FLOWLOG_EXPECT ?? "null");
const executablePath = process.env.FLOWLOG_CHROMIUM || "/usr/bin/chromium";
const screenshot = process.env.FLOWLOG_SCREENSHOT;
if (!base || !token || !expect) {
  console.error("FLOWLOG_URL, FLOWLOG_TOKEN and FLOWLOG_EXPECT are required");
  process.exit(2);
}

const timeout = 20_000;
const log = (...a) => console.error("token.test:", ...a);

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(timeout);
const exceptions = [];
page.on("pageerror", (e) => exceptions.push(e.message));

const rowIds = () => page.$$eval('[data-testid="flows-table"] tbody tr', (trs) => trs.map((tr) => tr.dataset.flowId));
const boxOpen = () => page.$eval("#token-box", (d) => d.open);

async function flowsReady() {
  await page.waitForFunction(() => document.querySelector('[data-testid="flows-table"]')?.dataset.state === "ready");
}

async function run() {
  // 1. No token: the API refuses (401) and the page asks for one.
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.querySelector("#token-box")?.open === true).catch(() => {
    throw new Failure("the token prompt did not open on a 401");
  });
  const err = await page.textContent("#error");
  check(err.includes("missing bearer token") && err.includes("API token"), `the error does not say a token is missing: ${err}`);
  const focused = await page.evaluate(() => document.activeElement?.getAttribute("name"));
  check(focused === "token", `the token input is not focused (${focused})`);
  log("prompt opened on 401");

  // 2. Save the token: the panels load with the token's networks only.
  await page.fill('#token-form input[name="token"]', token);
  await page.click('#token-form button[type="submit"]');
  await flowsReady();
  const ids = await rowIds();
  check(JSON.stringify(ids) === JSON.stringify(expect.rows), `rows: got ${JSON.stringify(ids)}, want ${JSON.stringify(expect.rows)}`);
  check(!(await boxOpen()), "the token prompt is still open after saving");
  check((await page.textContent("#error")).trim() === "", `an error is still shown: ${await page.textContent("#error")}`);
  log("token saved, rows ok");

  // 3. A reload keeps the token: no prompt, same rows.
  await page.reload();
  await flowsReady();
  check(!(await boxOpen()), "the token prompt opened again after a reload");
  const again = await rowIds();
  check(JSON.stringify(again) === JSON.stringify(expect.rows), `rows after reload: ${JSON.stringify(again)}`);
  check(exceptions.length === 0, `exceptions in the page: ${exceptions.join(" | ")}`);
}

let code = 0;
try {
  await run();
  console.log("PASS");
} catch (e) {
  code = 1;
  console.error(`token.test: FAIL: ${e instanceof Failure ? e.message : e.stack}`);
} finally {
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true }).catch((e) => console.error("screenshot:", e.message));
  }
  await browser.close();
}
process.exit(code);

// Browser test of the collector's page, run by e2e/web_e2e_test.go
// against a real `flowlog serve` filled with known flows:
//
//	FLOWLOG_URL=http://127.0.0.1:PORT FLOWLOG_EXPECT='{...}' node web/test/page.test.mjs
//
// It drives Debian's chromium with playwright-core (no downloaded browser).
// Protocol with the Go test on stdout: "READY-FOR-LIVE" when the page is
// filtered and its live tail connected (the Go test then sends a new flow);
// "READY-FOR-BURST" (the Go test then sends expect.burst flows at once);
// "PASS" at the end. Anything else on stdout/stderr is log. Exit status 0
// means every check passed.
//
// Environment: FLOWLOG_URL (required), FLOWLOG_EXPECT (required, JSON, see
// the Go test), FLOWLOG_CHROMIUM (default /usr/bin/chromium),
// FLOWLOG_SCREENSHOT (PNG written at the end or at the first failure).

import { chromium } from "playwright-core";

const base = process.env.FLOWLOG_URL;
const expect = JSON.parse(process.env.FLOWLOG_EXPECT ?? "null");
const executablePath = process.env.FLOWLOG_CHROMIUM || "/usr/bin/chromium";
const screenshot = process.env.FLOWLOG_SCREENSHOT;
if (!base || !expect) {
  console.error("FLOWLOG_URL and FLOWLOG_EXPECT are required");
  process.exit(2);
}

const timeout = 20_000;
const t0 = Date.now();
const log = (...a) => console.error(`page.test: ${((Date.now() - t0) / 1000).toFixed(1)}s`, ...a);

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}
function same(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  check(g === w, `${what}: got ${g}, want ${w}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // A fresh profile (--user-data-dir) is Playwright's own temporary one.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 1400 } });
page.setDefaultTimeout(timeout);

// Anything the page logs as an error (a CSP violation, an exception, a
// failed request other than the tail being cut at the end) fails the test.
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(`exception: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
});
// The page must not reach anything but the collector (it works offline).
const foreign = [];
page.on("request", (r) => {
  if (!r.url().startsWith(base) && !r.url().startsWith("data:")) foreign.push(r.url());
});

// panels waits until every panel is ready for the view whose URL query
// contains `needle` (each panel records the query it was drawn for).
async function panels(needle) {
  await page.waitForFunction(
    (needle) => {
      const ids = ["flows-table", "timeseries", "top-talkers", "graph"];
      return ids.every((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return el && el.dataset.state === "ready" && (el.dataset.query ?? "").includes(needle);
      });
    },
    needle,
    { timeout },
  ).catch(async (e) => {
    const states = await page.evaluate(() =>
      ["flows-table", "timeseries", "top-talkers", "graph"].map((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return `${id}: ${el?.dataset.state} ${el?.dataset.query} ${el?.querySelector(".panel-error")?.textContent ?? ""}`;
      }),
    );
    throw new Failure(`panels not ready for ${needle}: ${states.join("; ")} (${e.message.split("\n")[0]})`);
  });
}

const rowIds = () => page.$$eval('[data-testid="flows-table"] tbody tr', (trs) => trs.map((tr) => tr.dataset.flowId));
const chartSummary = async () => JSON.parse((await page.getAttribute('[data-testid="timeseries"]', "data-summary")) ?? "{}");
const talkers = () =>
  page.$$eval('[data-testid="talker"]', (lis) =>
    Object.fromEntries(lis.map((li) => [li.dataset.name, Number(li.dataset.bytes)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))),
  );
const graphNodes = async () => JSON.parse((await page.getAttribute('[data-testid="graph"]', "data-nodes")) ?? "[]");

async function waitFor(what, fn, want) {
  const deadline = Date.now() + timeout;
  let got;
  for (;;) {
    got = await fn();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() > deadline) throw new Failure(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    await page.waitForTimeout(100);
  }
}

async function run() {
  const net = expect.network;

  // 1. A link with a network filter: the form shows it, every panel has the
  //    network's flows and nothing of the other network.
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  same(await page.inputValue('input[name="network_id"]'), net, "network field from the URL");
  same(await rowIds(), expect.all.rows, "rows of the network, newest first");
  const all = await chartSummary();
  same([all.bytes, all.flows], [expect.all.bytes, expect.all.rows.length], "chart: bytes and flows plotted for the network");
  check(all.points > 0, `chart: no non-zero point (${JSON.stringify(all)})`);
  await waitFor("active-flows counter", () => page.getAttribute('[data-testid="active-count"]', "data-value"), String(expect.all.active));
  same(await graphNodes(), expect.all.nodes, "graph participants");
  log("network view ok:", JSON.stringify(all));

  // 2. Paging: a small page size from the URL, then "Load more" to the end.
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}&per_page=2`);
  await panels("per_page=2");
  same(await rowIds(), expect.all.rows.slice(0, 2), "first page of 2");
  for (let n = 4; ; n += 2) {
    check(await page.isVisible('[data-testid="load-more"]'), `Load more hidden with ${(await rowIds()).length} rows shown`);
    await page.click('[data-testid="load-more"]');
    const want = expect.all.rows.slice(0, Math.min(n, expect.all.rows.length));
    await waitFor(`rows after Load more (${n})`, rowIds, want);
    if (n >= expect.all.rows.length) break;
  }
  // The last page may be full (6 rows by 2): one more request finds nothing.
  if (await page.isVisible('[data-testid="load-more"]')) {
    await page.click('[data-testid="load-more"]');
    await page.waitForSelector('[data-testid="load-more"]', { state: "hidden" });
  }
  same(await rowIds(), expect.all.rows, "all rows after paging");
  log("paging ok");

  // 3. Apply a filter with the form: the URL follows, only UDP flows remain,
  //    the chart, top talkers and graph are those of the UDP flows.
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  await page.selectOption('select[name="protocol"]', "udp");
  await page.click('[data-testid="apply"]');
  await panels("protocol=udp");
  check(new URL(page.url()).searchParams.get("protocol") === "udp", `URL after apply: ${page.url()}`);
  await checkUDP("after apply");

  // 4. The URL reproduces the view.
  await page.reload();
  await panels("protocol=udp");
  same(await page.inputValue('select[name="protocol"]'), "udp", "protocol field after reload");
  await checkUDP("after reload");
  log("udp filter ok");

  // 5. Live: once the tail is connected, the Go test sends a new UDP flow
  //    (START, then DESTROY). It appears on top, highlighted, once (updated
  //    in place), and the chart and talkers follow.
  await page.waitForSelector('[data-testid="live-status"][data-live="connected"]', { timeout });
  console.log("READY-FOR-LIVE");
  const live = expect.live;
  const row = `[data-testid="flows-table"] tbody tr[data-flow-id="${live.flow_id}"]`;
  await page.waitForSelector(row, { timeout });
  await page.waitForSelector(`${row}[data-active="false"][data-bytes="${live.bytes}"]`, { timeout }).catch(async () => {
    throw new Failure(`live row not finished with ${live.bytes} bytes: ${await page.$eval(row, (tr) => tr.outerHTML)}`);
  });
  same((await rowIds())[0], live.flow_id, "live flow on top");
  same(await rowIds(), [live.flow_id, ...expect.udp.rows], "rows with the live flow");
  check(await page.$eval(row, (tr) => tr.classList.contains("live")), "live row not highlighted");
  check(Number(await page.getAttribute('[data-testid="live-count"]', "data-value")) >= 1, "live counter not updated");
  await waitFor("chart bytes after the live flow", async () => (await chartSummary()).bytes, expect.udp.bytes + live.bytes);
  await waitFor("top talkers after the live flow", talkers, expect.live.talkers);
  check(await page.isHidden('[data-testid="lost-notice"]'), "lost notice shown though nothing was lost");
  log("live ok");

  // 6. A burst larger than the collector's per-client buffer (the Go test
  //    runs it with --stream-buffer 1): what does not arrive is reported
  //    lost, visibly, and arrived + lost is the whole burst.
  const lostValue = async () => Number((await page.getAttribute('[data-testid="lost-notice"]', "data-value")) ?? 0);
  const newRows = async () => Number(await page.getAttribute('[data-testid="live-count"]', "data-value"));
  const before = await newRows();
  console.log("READY-FOR-BURST");
  await waitFor("burst flows shown + reported lost", async () => (await newRows()) - before + (await lostValue()), expect.burst);
  const lost = await lostValue();
  check(lost >= 1, "nothing reported lost from a burst larger than the buffer");
  check(await page.isVisible('[data-testid="lost-notice"]'), "lost notice hidden");
  check((await page.textContent('[data-testid="lost-notice"]')).includes(`lost ${lost}`), "lost notice does not say how many");
  log(`burst ok: ${expect.burst - lost} shown, ${lost} lost`);

  await page.waitForTimeout(300); // let the highlight show in the screenshot
  same(pageErrors, [], "errors in the page");
  same(foreign, [], "requests to other origins");
}

async function checkUDP(when) {
  const ids = await rowIds();
  same(ids, expect.udp.rows, `UDP rows ${when}`);
  const protos = await page.$$eval('[data-testid="flows-table"] tbody tr', (trs) => trs.map((tr) => tr.dataset.protocol));
  check(protos.every((p) => p === "17"), `non-UDP rows ${when}: ${protos}`);
  const s = await chartSummary();
  same([s.bytes, s.flows], [expect.udp.bytes, expect.udp.rows.length], `chart: bytes and flows plotted for UDP ${when}`);
  same(await talkers(), expect.udp.talkers, `top talkers (name → bytes) ${when}`);
  same(await graphNodes(), expect.udp.nodes, `graph participants ${when}`);
  same(Number(await page.getAttribute('[data-testid="graph"]', "data-edges")), expect.udp.edges, `graph edges ${when}`);
  await waitFor(`active-flows counter ${when}`, () => page.getAttribute('[data-testid="active-count"]', "data-value"), String(expect.udp.active));
}

let code = 0;
try {
  await run();
  console.log("PASS");
} catch (e) {
  code = 1;
  console.error(`page.test: FAIL: ${e instanceof Failure ? e.message : e.stack}`);
  if (pageErrors.length) console.error(`page.test: page errors: ${pageErrors.join(" | ")}`);
} finally {
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true }).catch((e) => console.error("screenshot:", e.message));
  }
  await browser.close();
}
process.exit(code);

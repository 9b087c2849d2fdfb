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
// FLOWLOG_SCREENSHOT (PNG written at the end or at the first failure; the
// views are also shot beside it, light and dark, 1600 and 390 px wide:
// page-<view>-<theme>-<width>.png).
//
// Beyond what the Go test expects, the oracle of the console's views is the
// collector's own flow listing (GET /api/v1/flows), read by this script.

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
const graphLayout = async () => JSON.parse((await page.getAttribute('[data-testid="graph"]', "data-layout")) ?? "{}");
const talkerOrder = () => page.$$eval('[data-testid="talker"]', (lis) => lis.map((li) => li.dataset.name));
const requests = () => page.evaluate(() => ({ ...(globalThis.flowlogRequests ?? {}) }));
const aggRequests = (r) => Object.entries(r).filter(([k]) => k.includes("aggregates/")).reduce((n, [, v]) => n + v, 0);
// listing reads the collector's flows (the oracle of the console's views).
const listing = (q) =>
  page.evaluate(async (q) => (await (await fetch(`api/v1/flows?per_page=1000&${q}`)).json()).Response, q);
const pad = (n, w = 2) => String(n).padStart(w, "0");
// utc prints a time as the page does in UTC: [date ]HH:MM:SS[.mmm].
function utc(iso, { ms = false, date = false } = {}) {
  const d = new Date(iso);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const today = new Date().toISOString().slice(0, 10);
  const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${ms ? "." + pad(d.getUTCMilliseconds(), 3) : ""}`;
  return date || day !== today ? `${day} ${clock}` : clock;
}
const label = (type, id, name, ip) => name || id || ip || type;

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
  // Rates beside the totals.
  check(/bit\/s/.test(await page.textContent('[data-testid="timeseries-total"] .rates')), "no bit rate beside the chart's total");
  check(/pkt\/s/.test(await page.textContent('[data-testid="timeseries-total"] .rates')), "no packet rate beside the chart's total");
  check(/bit\/s/.test(await page.textContent('[data-testid="talker"] .rate')), "no rate beside a top talker");
  log("network view ok:", JSON.stringify(all));

  // Export: the CSV of the filter, streamed by the collector, holds every
  // flow of the view, newest first, with a header.
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-csv"]')]);
  const csv = (await import("node:fs")).readFileSync(await dl.path(), "utf8").trim().split("\n");
  same(csv[0].split(",").slice(0, 2), ["flow_id", "host_id"], "CSV header");
  same(csv.slice(1).map((l) => l.split(",")[0]), expect.all.rows, "CSV export rows");
  log("export ok");

  // Times: UTC switch, one format, milliseconds in the flow detail.
  await page.selectOption('[data-testid="zone"]', "utc");
  await panels(`network_id=${net}`);
  same(await page.textContent('[data-testid="zone-label"]'), "Times in UTC", "zone shown");
  const flows = await listing(`network_id=${encodeURIComponent(net)}`);
  const byId = Object.fromEntries(flows.map((f) => [f.flow_id, f]));
  const shownTimes = await page.$$eval('[data-testid="flows-table"] tbody tr td.time', (tds) => tds.map((td) => td.textContent));
  same(shownTimes, expect.all.rows.map((id) => utc(byId[id].start_ts)), "start times in UTC");
  const finished = flows.find((f) => !f.active);
  await page.click(`[data-testid="flows-table"] tbody tr[data-flow-id="${finished.flow_id}"] td.num`);
  await page.waitForSelector('[data-testid="detail-observations"]');
  same(await page.getAttribute('[data-testid="detail"]', "data-flow-id"), finished.flow_id, "detail of the clicked flow");
  same(await page.textContent('[data-testid="detail-start"]'), `${utc(finished.start_ts, { ms: true, date: true })} UTC`, "detail start with ms");
  same(await page.textContent('[data-testid="detail-end"]'), `${utc(finished.end_ts, { ms: true, date: true })} UTC`, "detail end with ms");
  const ms = new Date(finished.end_ts) - new Date(finished.start_ts);
  check((await page.textContent('[data-testid="detail-duration"]')).includes(`(${ms} ms)`), "detail duration in ms");
  same(Number(await page.getAttribute('[data-testid="detail-observations"]', "data-count")), 1, "observations of the flow");
  check((await page.textContent('[data-testid="detail-fields"]')).includes(finished.flow_id), "every field in the detail");
  await page.click('[data-testid="detail-close"]');
  check(await page.isHidden('[data-testid="detail"]'), "detail still open after close");
  log("times and detail ok");

  // The chart stacked by protocol: one group a protocol, adding up to the
  // total, which stays what it was.
  await page.selectOption('[data-testid="stack-by"]', "protocol");
  await page.waitForFunction(() => document.querySelector('[data-testid="timeseries"]')?.dataset.stack);
  const perProto = {};
  for (const f of flows) {
    const k = { 6: "tcp", 17: "udp" }[f.protocol];
    perProto[k] = (perProto[k] ?? 0) + f.bytes_sent + f.bytes_recv;
  }
  const entries = (o) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
  same(entries(JSON.parse(await page.getAttribute('[data-testid="timeseries"]', "data-stack"))), entries(perProto), "bytes per protocol in the stacked chart");
  same((await chartSummary()).bytes, expect.all.bytes, "chart total when stacked");
  same(await page.$$eval("#timeseries .u-legend .u-series .u-label", (ls) => ls.map((l) => l.textContent).slice(1)), [...Object.keys(perProto).sort((a, b) => perProto[a] - perProto[b]), "flows"], "stacked legend");
  await page.selectOption('[data-testid="stack-by"]', "");
  await page.waitForFunction(() => !document.querySelector('[data-testid="timeseries"]')?.dataset.stack);
  log("stacked chart ok");

  // Names in the filters, suggested by the server: a participant by part of
  // its name; a host by its name, sent as its id, shown as its name.
  await page.fill('[data-testid="participant"]', "alp");
  await page.waitForFunction(() => [...document.querySelectorAll("#participants option")].some((o) => o.value === "alpha"));
  await page.fill('[data-testid="participant"]', "");
  await page.fill('[data-testid="host-filter"]', "alpha.m");
  await page.waitForFunction(() => [...document.querySelectorAll("#host-list option")].some((o) => o.value === "alpha.mesh"));
  await page.fill('[data-testid="host-filter"]', "alpha.mesh");
  await page.click('[data-testid="apply"]');
  await panels("node_id=alpha");
  same(await rowIds(), expect.all.rows.filter((id) => byId[id].host_id === "alpha"), "rows of the host picked by name");
  same(await page.inputValue('[data-testid="host-filter"]'), "alpha.mesh", "host field shows the name");
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  log("suggestions ok");

  // An absolute range: the flows starting in it, in the URL; Back returns.
  const [o1, o2, o3] = expect.all.rows.slice(1, 4).reverse().map((id) => byId[id]); // three in the middle, oldest first
  const sec = (iso, add = 0) => utc(new Date(Math.floor(new Date(iso).getTime() / 1000) * 1000 + add * 1000).toISOString(), { date: true });
  await page.fill('[data-testid="from"]', sec(o1.start_ts));
  await page.fill('[data-testid="to"]', sec(o3.start_ts, 1));
  await page.click('[data-testid="apply"]');
  await panels("from=");
  same(await rowIds(), [o3.flow_id, o2.flow_id, o1.flow_id], "rows of the absolute range");
  same((await chartSummary()).flows, 3, "chart flows of the absolute range");
  check(new URL(page.url()).searchParams.get("to"), `no to in the URL: ${page.url()}`);
  await page.click('[data-testid="range-back"]');
  await panels(`network_id=${net}`);
  same(await rowIds(), expect.all.rows, "rows after Back");
  check(!new URL(page.url()).searchParams.get("from"), `from still in the URL after Back: ${page.url()}`);
  // Drag on the chart zooms the range to the selection.
  const over = await page.locator('[data-testid="timeseries"] .u-over').boundingBox();
  await page.mouse.move(over.x + over.width * 0.3, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.9, over.y + over.height / 2, { steps: 4 });
  await page.mouse.up();
  await panels("to=");
  const zoomed = new URL(page.url()).searchParams;
  const zf = new Date(zoomed.get("from")).getTime();
  const zt = new Date(zoomed.get("to")).getTime();
  check(zf < zt && zt - zf < 3600_000 * 0.7, `zoomed range ${zoomed.get("from")}..${zoomed.get("to")} is not a part of the hour`);
  same(await rowIds(), expect.all.rows.filter((id) => { const t = new Date(byId[id].start_ts).getTime(); return t >= Math.floor(zf / 1000) * 1000 && t < zt; }), "rows of the zoomed range");
  await page.click('[data-testid="range-back"]');
  await panels(`network_id=${net}`);
  same(await rowIds(), expect.all.rows, "rows after Back from the zoom");
  // A window of 30 days: the time series is asked from the hour (whole
  // buckets, read from the rollups by hour of start), the rest from 30
  // days ago to the second; the flows are the same.
  const asked = [];
  const onAsk = (r) => r.url().includes("/aggregates/") && asked.push(new URL(r.url()));
  page.on("request", onAsk);
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}&range=30d`);
  await panels("range=30d");
  page.off("request", onAsk);
  const askedFrom = (name) => asked.find((u) => u.pathname.endsWith(`/aggregates/${name}`))?.searchParams.get("from") ?? "";
  const [seriesFrom, topFrom] = [askedFrom("timeseries"), askedFrom("top")];
  check(/T\d\d:00:00Z$/.test(seriesFrom), `time series of 30 days asked from ${seriesFrom}, not on the hour`);
  const ahead = new Date(topFrom).getTime() - new Date(seriesFrom).getTime();
  check(ahead >= 0 && ahead < 3600_000, `top talkers from ${topFrom}, time series from ${seriesFrom}: want the hour the window starts in`);
  same((await chartSummary()).flows, expect.all.rows.length, "chart flows of 30 days");
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  log("time range ok");

  // The external address is named by its network (AS and country, from the
  // collector's IP database: a fixture), and its AS is a link that filters.
  if (expect.named) {
    const ext = expect.named;
    await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
    await panels(`network_id=${net}`);
    const cell = `[data-testid="flows-table"] tbody tr[data-flow-id="${ext.flow_id}"] [data-testid="network"]`;
    same(await page.textContent(cell), ext.label, "network of the external address");
    check(/DB-IP/.test(await page.textContent('[data-testid="top-talkers"] .attribution')), "no attribution of the AS data");
    await page.click(`${cell} a.asn`);
    await panels(`asn=${ext.asn}`);
    same(await rowIds(), [ext.flow_id], "rows of the external address's AS");
    log("external networks ok");
  }

  // External endpoints by prefix: top talkers grouped by /24 and /48, a
  // prefix clicked is the address filter; in the table, an external
  // endpoint's prefix filters that side (src_ip, dst_ip).
  if (expect.prefixes) {
    const px = expect.prefixes;
    await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
    await panels(`network_id=${net}`);
    await page.selectOption("#talkers-by", "prefix-24-48");
    await waitFor("top talkers by prefix", talkers, px.talkers);
    await page.click(`[data-testid="talker"][data-name="${px.v6}"] a`);
    await panels(`ip=${encodeURIComponent(px.v6)}`);
    same(await page.inputValue('input[name="ip"]'), px.v6, "address filter of the clicked prefix");
    same(await rowIds(), [px.v6flow], "rows of the clicked prefix");
    await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
    await panels(`network_id=${net}`);
    await page.click(`[data-testid="flows-table"] tbody tr[data-flow-id="${px.v4flow}"] a[data-testid="prefix"]`);
    await panels(`dst_ip=${encodeURIComponent(px.v4)}`);
    same(await rowIds(), [px.v4flow], "rows of the destination prefix");
    check((await page.textContent("#chips")).includes(`destination address: ${px.v4}`), "no chip of the destination prefix");
    same(await listing(`network_id=${encodeURIComponent(net)}&src_ip=${encodeURIComponent(px.v4)}`), [], "nothing from the destination prefix");
    log("prefixes ok");
  }

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

  // Sorting, by the server: a header lists the flows in its order (the
  // collector's listing in that order is the oracle), "Load more" continues
  // that order, the header again reverses it, and the export follows it.
  const bytesOf = () => page.$$eval('[data-testid="flows-table"] tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.bytes)));
  const sortedBy = async (q) => (await listing(`network_id=${encodeURIComponent(net)}&${q}`)).map((f) => f.flow_id);
  for (const [header, q, order] of [
    ["bytes", "sort=bytes", (a, b) => b - a],
    ["bytes", "sort=bytes&order=asc", (a, b) => a - b],
    ["duration", "sort=duration", null],
  ]) {
    const want = await sortedBy(q);
    check(want.length === expect.all.rows.length, `listing ${q}: ${want.length} flows`);
    await page.click(`th[data-sort="${header}"]`);
    await waitFor(`first page by ${q}`, rowIds, want.slice(0, 2));
    check((await page.evaluate(() => location.search)).includes(q), `URL without ${q}`);
    await page.click('[data-testid="load-more"]');
    await waitFor(`next page by ${q}`, rowIds, want.slice(0, 4));
    if (order) {
      const b = await bytesOf();
      same(b, [...b].sort(order), `bytes shown by ${q}`);
    }
    same(await page.getAttribute(`th[data-sort="${header}"]`, "aria-sort"), q.includes("asc") ? "ascending" : "descending", `header of ${q}`);
  }
  const [sdl] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-csv"]')]);
  const sortedCsv = (await import("node:fs")).readFileSync(await sdl.path(), "utf8").trim().split("\n");
  same(sortedCsv.slice(1).map((l) => l.split(",")[0]), await sortedBy("sort=duration"), "CSV export by duration");
  await page.click('th[data-sort="start"]');
  await waitFor("rows by start again", rowIds, expect.all.rows.slice(0, 2));
  log("sorting ok");

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

  // 6. Stability and pause. The whole network's view: participants stay
  //    where they are when only numbers change. Paused, a burst larger than
  //    the collector's per-client buffer (the Go test runs it with
  //    --stream-buffer 1) changes nothing on screen and sends no request;
  //    what arrived and what was lost add up to the burst, visibly.
  //    Resumed, the rows come in and the aggregates refresh once.
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  await page.waitForSelector('[data-testid="live-status"][data-live="connected"]', { timeout });
  const layout = await graphLayout();
  const order = await talkerOrder();
  const rows0 = await rowIds();
  check(Object.keys(layout).length > 0, "no graph layout");
  await page.click('[data-testid="pause"]');
  const req0 = await requests();
  const lostValue = async () => Number((await page.getAttribute('[data-testid="lost-notice"]', "data-value")) ?? 0);
  const arrived = async () => Number(await page.getAttribute('[data-testid="live-count"]', "data-value"));
  console.log("READY-FOR-BURST");
  await waitFor("burst flows arrived + reported lost", async () => (await arrived()) + (await lostValue()), expect.burst);
  const lost = await lostValue();
  check(lost >= 1, "nothing reported lost from a burst larger than the buffer");
  check(await page.isVisible('[data-testid="lost-notice"]'), "lost notice hidden");
  check((await page.textContent('[data-testid="lost-notice"]')).includes(`lost ${lost}`), "lost notice does not say how many");
  same(await rowIds(), rows0, "rows while paused");
  same(aggRequests(await requests()), aggRequests(req0), "aggregate requests while paused");
  const waiting = Number(await page.getAttribute('[data-testid="pause"]', "data-held"));
  same(waiting, expect.burst - lost, "flows waiting while paused");
  check((await page.textContent('[data-testid="pause"]')).includes(`Resume (${waiting})`), "the resume button does not say how many wait");
  await page.click('[data-testid="pause"]');
  await waitFor("rows after resume", async () => (await rowIds()).length, rows0.length + waiting);
  await waitFor("active counter after resume", () => page.getAttribute('[data-testid="active-count"]', "data-value"), String(expect.all.active + expect.burst));
  await panels(`network_id=${net}`);
  same(await graphLayout(), layout, "graph layout after the refresh (nobody moved)");
  same(await talkerOrder(), order, "top talkers order after the refresh");
  const perEndpoint = Object.entries(await requests()).filter(([k]) => k.includes("aggregates/")).map(([k, v]) => [k, v - (req0[k] ?? 0)]);
  check(perEndpoint.every(([, n]) => n <= 2), `live refreshes not coalesced: ${JSON.stringify(perEndpoint)}`);
  log(`pause and burst ok: ${expect.burst - lost} shown, ${lost} lost, requests ${JSON.stringify(perEndpoint)}`);

  // 7. Hosts: every host of the network's flows, with its flow count.
  const now = await listing(`network_id=${encodeURIComponent(net)}&from=${new Date(Date.now() - 3000_000).toISOString().replace(/\.\d+Z/, "Z")}`);
  const hostFlows = {};
  for (const f of now) hostFlows[f.host_id] = (hostFlows[f.host_id] ?? 0) + 1;
  await page.click('[data-testid="tab-hosts"]');
  await page.waitForSelector('[data-testid="hosts"][data-state="ready"]');
  const hosts = await page.$$eval('[data-testid="host"]', (trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.hostId, Number(tr.dataset.flows)])));
  same(Object.keys(hosts).sort(), Object.keys(hostFlows).sort(), "hosts listed");
  same(hosts, Object.fromEntries(Object.keys(hosts).map((k) => [k, hostFlows[k]])), "flows per host");
  check(await page.$$eval('[data-testid="host"]', (trs) => trs.every((tr) => tr.dataset.quiet === "false")), "a reporting host marked quiet");
  // Which wire generation and agent each host runs.
  const agents = await page.$$eval('[data-testid="host"]', (trs) =>
    Object.fromEntries(trs.map((tr) => [tr.dataset.hostId, tr.querySelector('[data-testid="host-agents"]').dataset.generations])),
  );
  const byKey = (o) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
  same(byKey(agents), byKey(expect.agents), "wire generation of each host");
  const agentText = await page.$$eval('[data-testid="host-agents"]', (tds) => tds.map((td) => td.textContent));
  check(agentText.every((t) => /^v1\.(4|5\+) grpc-go\//.test(t)), `agents shown: ${JSON.stringify(agentText)}`);
  log("hosts ok:", JSON.stringify(hosts));

  // 8. New connections: with no baseline traffic, every pair of the window
  //    is new, ranked by flows; its link lists its flows.
  const pairs = {};
  for (const f of now) {
    const k = `${label(f.src_type, f.src_entity_id, f.src_entity_name, f.src_ip)}>${label(f.dst_type, f.dst_entity_id, f.dst_entity_name, f.dst_ip)}:${f.dst_port}/${{ 6: "tcp", 17: "udp" }[f.protocol]}`;
    pairs[k] = (pairs[k] ?? 0) + 1;
  }
  await page.click('[data-testid="tab-new"]');
  await page.waitForSelector('[data-testid="new-pairs"][data-state="ready"]');
  const shownPairs = await page.$$eval('[data-testid="new-pair"]', (trs) => trs.map((tr) => [tr.dataset.pair, Number(tr.dataset.flows)]));
  const sorted = (o) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
  same(sorted(Object.fromEntries(shownPairs)), sorted(pairs), "new pairs and their flows");
  same(shownPairs.map(([, n]) => n), shownPairs.map(([, n]) => n).sort((a, b) => b - a), "new pairs ranked by flows");
  const [topPair, topFlows] = shownPairs[0];
  await page.click('[data-testid="new-pair-flows"]');
  await panels("dst_entity_id=");
  const pairRows = now.filter((f) => `${label(f.src_type, f.src_entity_id, f.src_entity_name, f.src_ip)}>${label(f.dst_type, f.dst_entity_id, f.dst_entity_name, f.dst_ip)}:${f.dst_port}/${{ 6: "tcp", 17: "udp" }[f.protocol]}` === topPair);
  same(pairRows.length, topFlows, "flows of the top pair in the listing");
  const shownIds = await rowIds();
  same(shownIds, pairRows.map((f) => f.flow_id).slice(0, shownIds.length), "rows behind a new pair's link");
  log(`new connections ok: ${shownPairs.length} pairs`);

  // 9. One error banner: the collector stops answering (its API and health
  //    probe cut), the banner says so; it answers again, the banner clears
  //    by itself and the panels reload.
  const errorsBefore = pageErrors.length;
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  const cut = (route) => route.abort("connectionrefused");
  await page.route("**/api/v1/**", cut);
  await page.route("**/healthz", cut);
  await page.click('[data-testid="apply"]');
  await page.waitForSelector('[data-testid="error"]:not([hidden])');
  check((await page.textContent('[data-testid="error"]')).includes("not answering"), "banner does not say the collector is not answering");
  same(await page.$$eval(".panel-error:not([hidden])", (els) => els.length), 0, "panel errors beside the banner");
  await page.unroute("**/api/v1/**", cut);
  await page.unroute("**/healthz", cut);
  await page.waitForSelector('[data-testid="error"]', { state: "hidden" });
  await panels(`network_id=${net}`);
  pageErrors.splice(errorsBefore); // the refused requests' console lines
  log("error banner ok");

  // 10. The empty state says how to connect an agent.
  await page.route("**/api/v1/hosts*", (route) => route.fulfill({ json: { Code: 200, Message: "hosts retrieved successfully", Response: [] } }));
  await page.goto(`${base}/?network_id=no-such-network`);
  await panels("network_id=no-such-network");
  await page.waitForSelector('[data-testid="onboard"]:not([hidden])');
  check((await page.textContent('[data-testid="onboard"]')).includes("flowlog agent"), "the empty state does not say how to connect an agent");
  await page.unroute("**/api/v1/hosts*");
  log("empty state ok");

  // 11. Who talks to whom at 50 participants (the matrix answered by this
  //     script): every participant drawn, no two labels overlap, and a
  //     refresh with other numbers moves nobody.
  let round = 0;
  const names = Array.from({ length: 50 }, (_, i) => `participant-${String(i).padStart(2, "0")}.a-rather-long-domain.example`);
  await page.route("**/api/v1/aggregates/matrix*", (route) => {
    round++;
    const edges = [];
    for (let i = 0; i < 70; i++) {
      const a = i % 20;
      const b = 20 + ((i * 7) % 30);
      edges.push({ src: { type: "node", id: `p${a}`, name: names[a] }, dst: { type: i % 5 ? "node" : "user", id: `p${b}`, name: names[b] }, bytes: (i + 1) * 1000 * round, packets: i, flows: 1 });
    }
    route.fulfill({ json: { Code: 200, Message: "traffic matrix retrieved successfully", Response: edges } });
  });
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  same((await graphNodes()).length, 50, "participants drawn");
  const labelBoxes = () =>
    page.$$eval('[data-testid="graph"] .gnode text.label', (ts) => ts.map((t) => { const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }));
  const boxes = await labelBoxes();
  const overlaps = [];
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => { if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) overlaps.push([a, b]); }));
  same(overlaps, [], "overlapping labels at 50 participants");
  const layout50 = await graphLayout();
  const widths = () => page.$$eval('[data-testid="graph"] path.curve', (ps) => ps.map((p) => p.getAttribute("stroke-width")).sort().join());
  const w1 = await widths();
  await page.click('[data-testid="apply"]');
  await panels(`network_id=${net}`);
  same(await graphLayout(), layout50, "layout at 50 participants after a refresh");
  check((await widths()) !== w1 || round < 2, "the refresh changed no curve");
  same(await labelBoxes(), boxes, "label positions after a refresh");
  await page.unroute("**/api/v1/aggregates/matrix*");
  log("50 participants ok");

  // 12. Dark mode, and the shots of every view.
  await page.goto(`${base}/?network_id=${encodeURIComponent(net)}`);
  await panels(`network_id=${net}`);
  await page.selectOption('[data-testid="theme"]', "dark");
  same(await page.getAttribute("html", "data-theme"), "dark", "theme attribute");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const lum = bg.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0) / 765;
  check(lum < 0.2, `dark page background ${bg}`);
  await page.selectOption('[data-testid="theme"]', "auto");
  if (screenshot) await shots(screenshot.replace(/\.png$/, ""));

  await page.waitForTimeout(300); // let the highlight show in the screenshot
  same(pageErrors, [], "errors in the page");
  same(foreign, [], "requests to other origins");
}

// shots writes every view, light and dark, wide and phone-wide.
async function shots(prefix) {
  for (const [theme, width] of [["light", 1600], ["dark", 1600], ["light", 390], ["dark", 390]]) {
    const ctx = await browser.newContext({ viewport: { width, height: 1000 }, colorScheme: theme });
    const p = await ctx.newPage();
    for (const view of ["", "hosts", "new"]) {
      await p.goto(`${base}/?network_id=${encodeURIComponent(expect.network)}${view ? `&view=${view}` : ""}`);
      await p.waitForFunction((v) => {
        const el = document.querySelector(v ? `[data-testid="${v === "new" ? "new-pairs" : "hosts"}"]` : '[data-testid="graph"]');
        return el?.dataset.state === "ready";
      }, view);
      await p.waitForTimeout(300);
      await p.screenshot({ path: `${prefix}-${view || "traffic"}-${theme}-${width}.png`, fullPage: true });
    }
    // The traffic view sorted by bytes, external talkers by prefix.
    await p.goto(`${base}/?network_id=${encodeURIComponent(expect.network)}&sort=bytes`);
    await p.waitForFunction(() => document.querySelector('[data-testid="graph"]')?.dataset.state === "ready");
    await p.selectOption("#talkers-by", "prefix-24-48");
    await p.waitForFunction(() => document.querySelector('[data-testid="top-talkers"]')?.dataset.state === "ready");
    await p.waitForTimeout(300);
    await p.screenshot({ path: `${prefix}-sorted-${theme}-${width}.png`, fullPage: true });
    await ctx.close();
  }
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

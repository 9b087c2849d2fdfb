// The collector's page: filters (in the URL), active-flows counter, flows
// table, time series, top talkers, who-talks-to-whom graph, live tail.

import "./style.css";
import * as api from "./api";
import { TimeChart } from "./chart";
import { byId, h, panelState } from "./dom";
import * as F from "./filters";
import { TalkGraph } from "./graph";
import { FlowsTable } from "./table";
import { TopTalkers } from "./talkers";

const defaultPerPage = 100;
const talkersLimit = 10;
const matrixLimit = 50;
// After live flows arrive, the aggregates are asked again after this delay
// (one request per panel however many flows came meanwhile).
const liveRefreshDelay = 1500;
// Relative windows slide: the aggregates are refreshed this often anyway.
const periodicRefresh = 60_000;

const form = byId<HTMLFormElement>("filters");
const errorEl = byId("error");
const flowsEl = byId("flows");
const chartEl = byId("timeseries");
const talkersEl = byId("talkers");
const graphEl = byId("graph");
const activeEl = byId("active-count");
const liveEl = byId("live-status");
const liveCountEl = byId("live-count");
const lostEl = byId("lost-notice");
const byEl = byId<HTMLSelectElement>("talkers-by");
const metricEl = byId<HTMLSelectElement>("talkers-metric");

let filters = F.fromSearch(location.search);
let loadCtl = new AbortController();
let aggCtl = new AbortController();
let stopTail: (() => void) | null = null;
let liveCount = 0;
let lost = 0;
let refreshTimer = 0;
// The flows query of the first page, reused for the next ones so that the
// time window does not slide between pages.
let pageQuery = new URLSearchParams();
const networks = new Set<string>();

const table = new FlowsTable(flowsEl, () => void loadMore(), (field, value) => pick(field, value));
const chart = new TimeChart(chartEl);
const talkers = new TopTalkers(talkersEl, (by, v) => pick(by === "ip" ? "ip" : "participant", v));
const graph = new TalkGraph(graphEl, (v) => pick("participant", v));

// ---- filters <-> form <-> URL

function fillForm(f: F.Filters) {
  for (const k of F.fields) {
    const el = form.elements.namedItem(k) as HTMLInputElement | HTMLSelectElement;
    if (el instanceof HTMLSelectElement && f.values[k] && ![...el.options].some((o) => o.value === f.values[k])) {
      el.append(h("option", { value: f.values[k] }, f.values[k])); // e.g. protocol=47 from a link
    }
    el.value = f.values[k];
  }
  const range = form.elements.namedItem("range") as HTMLSelectElement;
  const custom = range.querySelector<HTMLOptionElement>("option[value=custom]")!;
  custom.hidden = f.range !== "custom";
  custom.textContent = f.range === "custom" ? `${f.from || "…"} → ${f.to || "now"}` : "custom";
  range.value = f.range;
}

function readForm(): F.Filters {
  const f = F.empty();
  for (const k of F.fields) f.values[k] = (form.elements.namedItem(k) as HTMLInputElement).value.trim();
  f.range = (form.elements.namedItem("range") as HTMLSelectElement).value;
  if (f.range === "custom") {
    f.from = filters.from;
    f.to = filters.to;
  }
  f.perPage = filters.perPage;
  return f;
}

function apply(f: F.Filters, push = true) {
  filters = f;
  const search = F.toSearch(f);
  if (push && search !== location.search) history.pushState(null, "", location.pathname + search);
  fillForm(f);
  void reload();
}

function pick(field: F.Field, value: string) {
  const f = readForm();
  f.values[field] = value;
  apply(f);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  apply(readForm());
});
byId("reset").addEventListener("click", () => apply(F.empty()));
window.addEventListener("popstate", () => apply(F.fromSearch(location.search), false));
byEl.addEventListener("change", () => void loadTalkers(aggCtl.signal, new Date()));
metricEl.addEventListener("change", () => void loadTalkers(aggCtl.signal, new Date()));

// ---- token

const tokenForm = byId<HTMLFormElement>("token-form");
(tokenForm.elements.namedItem("token") as HTMLInputElement).value = api.getToken();
tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  api.setToken((tokenForm.elements.namedItem("token") as HTMLInputElement).value.trim());
  (byId<HTMLDetailsElement>("token-box")).open = false;
  void reload();
});

// ---- loading

function showError(msg: string) {
  errorEl.textContent = msg;
  errorEl.hidden = !msg;
}

const queryKey = () => F.toSearch(filters) || "?";

// reload asks every panel again and restarts the live tail.
async function reload() {
  loadCtl.abort();
  loadCtl = new AbortController();
  const signal = loadCtl.signal;
  showError("");
  startTail();
  const now = new Date();
  const key = queryKey();
  panelState(flowsEl, "loading", key);
  pageQuery = F.apiQuery(filters, now, "open");
  const flows = api
    .listFlows(pageQuery, filters.perPage || defaultPerPage, "", signal)
    .then(({ rows, next }) => {
      if (signal.aborted) return;
      table.reset(rows, next);
      noteNetworks(rows);
      panelState(flowsEl, "ready", key);
    })
    .catch((e) => fail(flowsEl, key, e, signal, true));
  await Promise.all([flows, refreshAggregates(now)]);
}

async function loadMore() {
  const signal = loadCtl.signal;
  const key = queryKey();
  table.setLoadingMore(true);
  try {
    const { rows, next } = await api.listFlows(pageQuery, filters.perPage || defaultPerPage, table.next, signal);
    if (signal.aborted) return;
    table.append(rows, next);
    noteNetworks(rows);
  } catch (e) {
    fail(flowsEl, key, e, signal, true);
  } finally {
    table.setLoadingMore(false);
  }
}

// refreshAggregates asks the counter, chart, top talkers and graph again
// (after apply, after live flows, and periodically).
async function refreshAggregates(now = new Date()) {
  aggCtl.abort();
  aggCtl = new AbortController();
  const signal = aggCtl.signal;
  const key = queryKey();
  const noTime = F.apiQuery(filters, now, "none");
  noTime.delete("state"); // "active now" is its own state
  const w = F.timeWindow(filters, now);
  const to = w.to ?? now;
  panelState(chartEl, "loading", key);
  panelState(graphEl, "loading", key);
  await Promise.all([
    api
      .activeCount(noTime, signal)
      .then((n) => {
        activeEl.querySelector("b")!.textContent = String(n);
        activeEl.dataset.value = String(n);
      })
      .catch((e) => {
        if (!signal.aborted) activeEl.title = String(e instanceof Error ? e.message : e);
      }),
    api
      .timeseries(F.apiQuery(filters, now, "closed"), signal)
      .then((s) => {
        if (signal.aborted) return;
        chart.set(s, w.from, to);
        panelState(chartEl, "ready", key);
      })
      .catch((e) => fail(chartEl, key, e, signal)),
    loadTalkers(signal, now),
    api
      .matrix(F.apiQuery(filters, now, "open"), matrixLimit, signal)
      .then((edges) => {
        if (signal.aborted) return;
        graph.set(edges);
        panelState(graphEl, "ready", key);
      })
      .catch((e) => fail(graphEl, key, e, signal)),
  ]);
}

async function loadTalkers(signal: AbortSignal, now: Date) {
  const key = queryKey();
  const by = byEl.value;
  const metric = metricEl.value;
  panelState(talkersEl, "loading", key);
  try {
    const rows = await api.top(F.apiQuery(filters, now, "open"), by, metric, talkersLimit, signal);
    if (signal.aborted) return;
    talkers.set(rows, by, metric);
    panelState(talkersEl, "ready", key);
  } catch (e) {
    fail(talkersEl, key, e, signal);
  }
}

function fail(el: HTMLElement, key: string, e: unknown, signal: AbortSignal, global = false) {
  if (signal.aborted) return;
  const msg = e instanceof Error ? e.message : String(e);
  panelState(el, "error", key, msg);
  if (global) showError(msg);
  if (e instanceof api.ApiError && e.status === 401) askToken();
  console.warn(msg);
}

// askToken opens the API token prompt: the collector wants a (valid) token.
function askToken() {
  const box = byId<HTMLDetailsElement>("token-box");
  if (box.open) return;
  box.open = true;
  (tokenForm.elements.namedItem("token") as HTMLInputElement).focus();
}

function noteNetworks(rows: api.FlowRow[]) {
  let added = false;
  for (const r of rows) {
    if (r.network_id && !networks.has(r.network_id)) {
      networks.add(r.network_id);
      added = true;
    }
  }
  if (added) byId("networks").replaceChildren(...[...networks].sort().map((n) => h("option", { value: n })));
}

// ---- live tail

function setLive(state: "connecting" | "connected" | "error", text: string, title = "") {
  liveEl.dataset.live = state;
  liveEl.querySelector(".live-text")!.textContent = text;
  liveEl.title = title || "live tail of new flows";
}

function startTail() {
  stopTail?.();
  liveCount = 0;
  liveCountEl.hidden = true;
  lost = 0;
  lostEl.hidden = true;
  setLive("connecting", "connecting…");
  const tailFilters = filters;
  stopTail = api.tail(F.apiQuery(filters, new Date(), "none"), {
    onOpen: () => setLive("connected", "live"),
    onFlow: (row) => {
      if (tailFilters !== filters || !F.inWindow(filters, row.start_ts, new Date())) return;
      const shown = table.upsert(row);
      if (shown === "new") {
        liveCount++;
        liveCountEl.textContent = `+${liveCount} new`;
        liveCountEl.title = `${liveCount} flow${liveCount === 1 ? "" : "s"} arrived live since the view was loaded`;
        liveCountEl.dataset.value = String(liveCount);
        liveCountEl.hidden = false;
        noteNetworks([row]);
      }
      if (shown) scheduleRefresh();
    },
    onLost: (n) => {
      lost += n;
      lostEl.textContent = `lost ${lost} live update${lost === 1 ? "" : "s"} (the tail fell behind): Apply to reload`;
      lostEl.dataset.value = String(lost);
      lostEl.hidden = false;
      scheduleRefresh(); // the aggregates still count what the tail dropped
    },
    onError: (msg, final) => setLive("error", final ? "not live" : "reconnecting…", msg),
  });
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = window.setTimeout(() => {
    refreshTimer = 0;
    void refreshAggregates();
  }, liveRefreshDelay);
}

window.setInterval(() => {
  if (document.visibilityState === "visible") void refreshAggregates();
}, periodicRefresh);

fillForm(filters);
void reload();

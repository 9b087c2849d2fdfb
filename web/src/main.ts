// The collector's page: filters and time range (in the URL), three views
// (traffic: counter, chart, top talkers, who-talks-to-whom, flows table and
// detail; hosts; new connections), the live tail with pause, one error
// banner, local/UTC times and a dark mode.

import "./style.css";
import * as api from "./api";
import { TimeChart } from "./chart";
import { FlowDetail } from "./detail";
import { byId, h, panelState } from "./dom";
import * as F from "./filters";
import * as fmt from "./format";
import { TalkGraph } from "./graph";
import { FlowsTable } from "./table";
import { TopTalkers } from "./talkers";
import { HostsView, NewPairsView } from "./views";

const defaultPerPage = 100;
const talkersLimit = 10;
const matrixLimit = 50;
// Live flows make the aggregates refresh: the first after this delay, then
// at most once per liveRefreshGap however many flows arrive (4 requests per
// refresh; the page used to send about 2 a second).
const liveRefreshDelay = 1500;
const liveRefreshGap = 10_000;
// Relative windows slide: the aggregates are refreshed this often anyway.
const periodicRefresh = 60_000;
// While the collector does not answer, it is asked this often.
const healthPoll = 2000;

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
const pauseEl = byId<HTMLButtonElement>("pause");
const byEl = byId<HTMLSelectElement>("talkers-by");
const metricEl = byId<HTMLSelectElement>("talkers-metric");
const stackEl = byId<HTMLSelectElement>("stack-by");
const stackLimit = 6;
const zoneEl = byId<HTMLSelectElement>("zone");
const themeEl = byId<HTMLSelectElement>("theme");
const backEl = byId<HTMLButtonElement>("back");
const hostsEl = byId("hosts");
const newEl = byId("new");
const onboardEl = byId("onboard");
const input = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
const rangeEl = form.elements.namedItem("range") as HTMLSelectElement;

let filters = F.fromSearch(location.search);
let loadCtl = new AbortController();
let aggCtl = new AbortController();
let stopTail: (() => void) | null = null;
let liveCount = 0;
let lost = 0;
let refreshTimer = 0;
let lastRefresh = 0;
let paused = false;
// Live rows that arrived while paused, latest version of each flow.
const held = new Map<string, api.FlowRow>();
// The flows query of the first page, reused for the next ones so that the
// time window does not slide between pages.
let pageQuery = new URLSearchParams();
// Time ranges left by a zoom or a new range, for Back.
const rangeStack: Array<Pick<F.Filters, "range" | "from" | "to">> = [];
// Host names by id (the host filter shows and accepts names).
const hostNames = new Map<string, string>();
const networks = new Set<string>();

const detail = new FlowDetail(byId("detail"), (field, value) => pick(field, value));
const table = new FlowsTable(
  flowsEl,
  () => void loadMore(),
  (field, value) => pick(field, value),
  (r) => detail.show(r),
  // A header asks the server for that order (again: the other way round).
  (key) => apply({ ...readForm(), sort: key, asc: key === filters.sort ? !filters.asc : false }),
);
const chart = new TimeChart(chartEl, (from, to) => setRange({ range: "custom", from: F.rfc3339(from), to: F.rfc3339(to) }));
const talkers = new TopTalkers(talkersEl, (by, v) => {
  if (by === "external") {
    byEl.value = "ip"; // the externals, each by its address
    void loadTalkers(aggCtl.signal, new Date());
  } else pick(by === "ip" || by === "asn" || by === "country" ? by : by.startsWith("prefix") ? "ip" : "participant", v);
});
const graph = new TalkGraph(graphEl, (v) => pick("participant", v));
const hostsView = new HostsView(hostsEl, drill);
const newView = new NewPairsView(newEl, drill);

// ---- settings kept in the browser: time zone and theme

function setting(key: string, def: string): string {
  try {
    return localStorage.getItem(`flowlog.${key}`) ?? def;
  } catch {
    return def;
  }
}
function saveSetting(key: string, v: string) {
  try {
    localStorage.setItem(`flowlog.${key}`, v);
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
}

function applyTheme(t: string) {
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  themeEl.value = t === "light" || t === "dark" ? t : "auto";
}
applyTheme(setting("theme", "auto"));
themeEl.addEventListener("change", () => {
  saveSetting("theme", themeEl.value);
  applyTheme(themeEl.value);
  chart.rebuild(); // uPlot paints with the theme's colours
});
// Following the system: the chart repaints when the system switches.
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => chart.rebuild());

fmt.setZone(setting("zone", "local") === "utc" ? "utc" : "local");
zoneEl.value = fmt.getZone();
zoneEl.addEventListener("change", () => {
  fmt.setZone(zoneEl.value === "utc" ? "utc" : "local");
  saveSetting("zone", fmt.getZone());
  showZone();
  chart.rebuild();
  detail.rerender();
  apply(filters, false); // every time on the page in the new zone
});
function showZone() {
  byId("zone-label").textContent = `Times in ${fmt.zoneLabel()}`;
  document.documentElement.dataset.zone = fmt.getZone();
}
showZone();

// ---- filters <-> form <-> URL

function fillForm(f: F.Filters) {
  for (const k of F.fields) {
    if (F.chipFields.includes(k)) continue;
    const el = form.elements.namedItem(k) as HTMLInputElement | HTMLSelectElement;
    if (el instanceof HTMLSelectElement && f.values[k] && ![...el.options].some((o) => o.value === f.values[k])) {
      el.append(h("option", { value: f.values[k] }, f.values[k])); // e.g. protocol=47 from a link
    }
    el.value = k === "node_id" ? hostNames.get(f.values[k]) || f.values[k] : f.values[k];
  }
  rangeEl.value = f.range;
  const w = F.timeWindow(f, new Date());
  input("from").value = fmt.inputValue(w.from);
  input("to").value = w.to ? fmt.inputValue(w.to) : "";
  backEl.disabled = rangeStack.length === 0;
  byId("chips").replaceChildren(
    ...F.chipFields
      .filter((k) => f.values[k])
      .map((k) =>
        h(
          "span",
          { class: "chip-filter", "data-field": k },
          `${F.chipLabels[k] ?? k}: ${f.values[k]} `,
          h(
            "button",
            {
              type: "button",
              title: "remove this filter",
              onclick: () => {
                const g = readForm();
                g.values[k] = "";
                apply(g);
              },
            },
            "×",
          ),
        ),
      ),
  );
  document.querySelectorAll<HTMLElement>(".tabs a").forEach((a) => a.setAttribute("aria-current", String(a.dataset.view === f.view)));
  for (const v of F.views) byId(`view-${v || "traffic"}`).hidden = v !== f.view;
  (byId("new-window") as HTMLSelectElement).value = f.window || "24h";
  (byId("new-baseline") as HTMLSelectElement).value = f.baseline || "7d";
}

function readForm(): F.Filters {
  const f = F.empty();
  for (const k of F.fields) {
    if (F.chipFields.includes(k)) f.values[k] = filters.values[k];
    else f.values[k] = input(k).value.trim();
  }
  // The host field shows names; the API wants the id.
  const host = f.values.node_id;
  // (A v1.4 agent sends no host name: an empty field is no host.)
  if (host) for (const [id, name] of hostNames) if (name === host) f.values.node_id = id;
  f.range = rangeEl.value;
  if (f.range === "custom") {
    f.from = timeInput("from") ?? filters.from;
    f.to = timeInput("to") ?? "";
  }
  f.perPage = filters.perPage;
  f.view = filters.view;
  f.window = filters.window;
  f.baseline = filters.baseline;
  f.sort = filters.sort;
  f.asc = filters.asc;
  return f;
}

// timeInput reads a range field: RFC 3339, or null when empty; a time it
// cannot read is said in the banner (and the field keeps what it had).
let badTime = "";
function timeInput(name: "from" | "to"): string | null {
  const v = input(name).value.trim();
  if (!v) return null;
  const d = fmt.fromInput(v);
  if (!d) {
    badTime = `${name}: "${v}" is not a time: write YYYY-MM-DD HH:MM:SS (${fmt.zoneLabel()})`;
    return null;
  }
  return F.rfc3339(d);
}

function apply(f: F.Filters, push = true) {
  filters = f;
  const search = F.toSearch(f);
  if (push && search !== location.search) history.pushState(null, "", location.pathname + search);
  fillForm(f);
  void reload();
}

// setRange moves to a new time range, remembering the current one for Back.
function setRange(r: Pick<F.Filters, "range" | "from" | "to">) {
  rangeStack.push({ range: filters.range, from: filters.from, to: filters.to });
  apply({ ...readForm(), ...r });
}

function pick(field: F.Field, value: string) {
  const f = readForm();
  f.values[field] = value;
  apply(f);
}

// drill opens the traffic view on some filters (from a host or a new pair).
function drill(values: Record<string, string>, from?: string) {
  const f = F.empty();
  f.values.network_id = filters.values.network_id;
  Object.assign(f.values, values);
  if (from) {
    f.range = "custom";
    f.from = from.replace(/\.\d{3}Z$/, "Z");
  } else {
    f.range = filters.range;
    f.from = filters.from;
    f.to = filters.to;
  }
  apply(f);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  badTime = "";
  const f = readForm();
  if (badTime) {
    setBanner("msg", badTime);
    return;
  }
  if (f.range !== filters.range || f.from !== filters.from || f.to !== filters.to) {
    rangeStack.push({ range: filters.range, from: filters.from, to: filters.to });
  }
  apply(f);
});
// Editing a time makes the range custom; picking a preset applies it.
for (const n of ["from", "to"]) input(n).addEventListener("input", () => (rangeEl.value = "custom"));
rangeEl.addEventListener("change", () => {
  if (rangeEl.value !== "custom") setRange({ range: rangeEl.value, from: "", to: "" });
});
backEl.addEventListener("click", () => {
  const prev = rangeStack.pop();
  if (prev) apply({ ...readForm(), ...prev });
});
byId("reset").addEventListener("click", () => apply({ ...F.empty(), view: filters.view }));
window.addEventListener("popstate", () => apply(F.fromSearch(location.search), false));
byEl.addEventListener("change", () => void loadTalkers(aggCtl.signal, new Date()));
stackEl.value = setting("stack", "");
stackEl.addEventListener("change", () => {
  saveSetting("stack", stackEl.value);
  void refreshAggregates();
});
metricEl.addEventListener("change", () => void loadTalkers(aggCtl.signal, new Date()));
document.querySelectorAll<HTMLAnchorElement>(".tabs a").forEach((a) =>
  a.addEventListener("click", (e) => {
    e.preventDefault();
    apply({ ...readForm(), view: (a.dataset.view ?? "") as F.View });
  }),
);
for (const [id, key] of [["new-window", "window"], ["new-baseline", "baseline"]] as const) {
  byId<HTMLSelectElement>(id).addEventListener("change", (e) => apply({ ...readForm(), [key]: (e.target as HTMLSelectElement).value }));
}
for (const fmtName of ["csv", "jsonl"] as const) {
  byId(`export-${fmtName}`).addEventListener("click", (e) => {
    e.preventDefault();
    const q = F.apiQuery(filters, new Date(), "open");
    F.setSort(filters, q); // the export in the table's order
    const url = api.exportUrl(q, fmtName);
    api.download(url, `flows.${fmtName}`).catch((err) => setBanner("msg", String(err instanceof Error ? err.message : err)));
  });
}

// ---- suggestions for the name fields, from the server

let suggestCtl = new AbortController();
let suggestTimer = 0;
function suggestFor(text: string) {
  window.clearTimeout(suggestTimer);
  suggestTimer = window.setTimeout(() => {
    suggestCtl.abort();
    suggestCtl = new AbortController();
    const q = new URLSearchParams({ q: text, limit: "15" });
    if (filters.values.network_id) q.set("network_id", filters.values.network_id);
    api
      .suggest(q, suggestCtl.signal)
      .then((list) => {
        const opts: Record<string, HTMLOptionElement[]> = { participant: [], node_id: [], network_id: [] };
        for (const s of list) {
          if (s.field === "node_id") hostNames.set(s.value, s.label);
          // Participants are offered by name (the filter takes names); hosts
          // by name too (mapped back to the id on Apply).
          const value = s.field === "network_id" ? s.value : s.label || s.value;
          const label = s.field === "participant" ? `${s.type ?? ""} ${s.value !== s.label ? s.value : ""}`.trim() : s.field === "node_id" ? s.value : "";
          opts[s.field].push(h("option", { value, label: label || null }));
        }
        byId("participants").replaceChildren(...opts.participant);
        byId("host-list").replaceChildren(...opts.node_id);
        if (opts.network_id.length) byId("networks").replaceChildren(...opts.network_id);
      })
      .catch(() => {});
  }, 250);
}
for (const n of ["participant", "node_id", "network_id"]) {
  input(n).addEventListener("input", () => suggestFor(input(n).value.trim()));
  input(n).addEventListener("focus", () => suggestFor(input(n).value.trim()));
}

// ---- token

const tokenForm = byId<HTMLFormElement>("token-form");
(tokenForm.elements.namedItem("token") as HTMLInputElement).value = api.getToken();
tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  api.setToken((tokenForm.elements.namedItem("token") as HTMLInputElement).value.trim());
  byId<HTMLDetailsElement>("token-box").open = false;
  void reload();
});

// ---- the one error banner: the collector down (cleared when it answers
// again, then everything reloads), or a refused request (cleared by the
// next view).

let down = "";
let refused = "";
let pollTimer = 0;

function setBanner(kind: "down" | "msg", msg: string) {
  if (kind === "down") down = msg;
  else refused = msg;
  const text = down ? `The collector is not answering: ${down}. Retrying every ${healthPoll / 1000} s; the page reloads when it is back.` : refused;
  errorEl.textContent = text;
  errorEl.hidden = !text;
  errorEl.dataset.kind = down ? "down" : refused ? "refused" : "";
}

api.onStatus((ok, msg) => {
  if (ok) {
    if (down) recovered();
    return;
  }
  if (!down) {
    setBanner("down", msg);
    pollTimer = window.setInterval(() => {
      void api.healthy().then((up) => up && down && recovered());
    }, healthPoll);
  }
});

function recovered() {
  window.clearInterval(pollTimer);
  setBanner("down", "");
  void reload();
}

// ---- loading

const queryKey = () => F.toSearch(filters) || "?";

// reload asks the current view's panels again (and restarts the live tail
// on the traffic view).
async function reload() {
  loadCtl.abort();
  loadCtl = new AbortController();
  const signal = loadCtl.signal;
  setBanner("msg", "");
  const now = new Date();
  if (filters.view !== "") {
    stopTail?.();
    stopTail = null;
    setLive("error", "not live", "the live tail runs on the traffic view");
    if (filters.view === "hosts") await loadHosts(signal, now);
    else await loadNew(signal);
    return;
  }
  startTail();
  const key = queryKey();
  panelState(flowsEl, "loading", key);
  pageQuery = F.apiQuery(filters, now, "open");
  F.setSort(filters, pageQuery);
  table.setSort(filters.sort, filters.asc);
  const flows = api
    .listFlows(pageQuery, filters.perPage || defaultPerPage, "", signal)
    .then(({ rows, next }) => {
      if (signal.aborted) return;
      table.reset(rows, next);
      noteRows(rows);
      panelState(flowsEl, "ready", key);
      if (!rows.length) void checkOnboarding(signal);
      else onboardEl.hidden = true;
    })
    .catch((e) => fail(flowsEl, key, e, signal));
  await Promise.all([flows, refreshAggregates(now)]);
}

// checkOnboarding shows how to connect an agent when none ever reported.
async function checkOnboarding(signal: AbortSignal) {
  try {
    const hosts = await api.hosts(new URLSearchParams(), signal);
    onboardEl.hidden = hosts.length > 0;
    byId("onboard-host").textContent = location.hostname || "collector.example";
  } catch {
    // the banner says why
  }
}

async function loadHosts(signal: AbortSignal, now: Date) {
  const key = queryKey();
  panelState(hostsEl, "loading", key);
  const q = F.apiQuery(filters, now, "open");
  const keep = new URLSearchParams();
  for (const k of ["network_id", "node_id", "from", "to"]) if (q.get(k)) keep.set(k, q.get(k)!);
  try {
    const hosts = await api.hosts(keep, signal);
    if (signal.aborted) return;
    for (const x of hosts) hostNames.set(x.host_id, x.host_name);
    hostsView.set(hosts);
    panelState(hostsEl, "ready", key);
  } catch (e) {
    fail(hostsEl, key, e, signal);
  }
}

async function loadNew(signal: AbortSignal) {
  const key = queryKey();
  panelState(newEl, "loading", key);
  const q = F.apiQuery(filters, new Date(), "none");
  q.delete("state");
  q.set("window", filters.window || "24h");
  q.set("baseline", filters.baseline || "7d");
  try {
    const r = await api.newPairs(q, signal);
    if (signal.aborted) return;
    newView.set(r);
    panelState(newEl, "ready", key);
  } catch (e) {
    fail(newEl, key, e, signal);
  }
}

async function loadMore() {
  const signal = loadCtl.signal;
  const key = queryKey();
  table.setLoadingMore(true);
  try {
    const { rows, next } = await api.listFlows(pageQuery, filters.perPage || defaultPerPage, table.next, signal);
    if (signal.aborted) return;
    table.append(rows, next);
    noteRows(rows);
  } catch (e) {
    fail(flowsEl, key, e, signal);
  } finally {
    table.setLoadingMore(false);
  }
}

// refreshAggregates asks the counter, chart, top talkers and graph again
// (after apply, after live flows, and periodically). Panels keep what they
// show while they load: a refresh changes numbers, it does not blank them.
async function refreshAggregates(now = new Date()) {
  if (filters.view !== "") return;
  aggCtl.abort();
  aggCtl = new AbortController();
  lastRefresh = Date.now();
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
        activeEl.querySelector("b")!.textContent = fmt.count(n);
        activeEl.dataset.value = String(n);
        activeEl.title = `${n} flows open now (START seen, no DESTROY yet) matching the filters`;
      })
      .catch(() => {}),
    Promise.all([
      api.timeseries(F.seriesQuery(filters, now), signal),
      stackEl.value ? api.stacked(F.seriesQuery(filters, now), stackEl.value, stackLimit, signal) : null,
    ])
      .then(([s, st]) => {
        if (signal.aborted) return;
        chart.set(s, w.from, to, st);
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
    const w = F.timeWindow(filters, now);
    talkers.set(rows, by, metric, ((w.to ?? now).getTime() - w.from.getTime()) / 1000);
    panelState(talkersEl, "ready", key);
  } catch (e) {
    fail(talkersEl, key, e, signal);
  }
}

// fail marks a panel; the message goes to the one banner (a refused
// request) or is already there (the collector down).
function fail(el: HTMLElement, key: string, e: unknown, signal: AbortSignal) {
  if (signal.aborted) return;
  const msg = e instanceof Error ? e.message : String(e);
  panelState(el, "error", key);
  if (e instanceof api.ApiError && e.status < 500) setBanner("msg", msg);
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

function noteRows(rows: api.FlowRow[]) {
  let added = false;
  for (const r of rows) {
    if (r.host_name) hostNames.set(r.host_id, r.host_name);
    if (r.network_id && !networks.has(r.network_id)) {
      networks.add(r.network_id);
      added = true;
    }
  }
  if (added) byId("networks").replaceChildren(...[...networks].sort().map((n) => h("option", { value: n })));
}

// ---- live tail, pause

function setLive(state: "connecting" | "connected" | "error", text: string, title = "") {
  liveEl.dataset.live = state;
  liveEl.querySelector(".live-text")!.textContent = text;
  liveEl.title = title || "live tail of new flows";
}

function showCounts() {
  liveCountEl.textContent = paused ? `${held.size} waiting` : `+${liveCount} new`;
  liveCountEl.title = `${liveCount} flow${liveCount === 1 ? "" : "s"} arrived live since the view was loaded`;
  liveCountEl.dataset.value = String(liveCount);
  liveCountEl.hidden = liveCount === 0 && !paused;
  pauseEl.textContent = paused ? `▶ Resume${held.size ? ` (${held.size})` : ""}` : "❚❚ Pause";
  pauseEl.setAttribute("aria-pressed", String(paused));
  pauseEl.dataset.held = String(held.size);
}

pauseEl.addEventListener("click", () => {
  paused = !paused;
  document.documentElement.dataset.paused = String(paused);
  if (!paused) {
    for (const r of held.values()) showLive(r);
    held.clear();
    void refreshAggregates();
  }
  showCounts();
});

// showLive puts a live row in the table (and the open detail).
function showLive(row: api.FlowRow) {
  const shown = table.upsert(row);
  detail.update(row);
  if (shown) {
    noteRows([row]);
    scheduleRefresh();
  }
}

function startTail() {
  stopTail?.();
  liveCount = 0;
  held.clear();
  lost = 0;
  lostEl.hidden = true;
  showCounts();
  setLive("connecting", "connecting…");
  const tailFilters = filters;
  stopTail = api.tail(F.apiQuery(filters, new Date(), "none"), {
    onOpen: () => {
      setLive("connected", "live");
      if (down) recovered();
    },
    onFlow: (row) => {
      if (tailFilters !== filters || !F.inWindow(filters, row.start_ts, new Date())) return;
      if (!table.rowOf(row.flow_id) && !held.has(row.flow_id)) liveCount++;
      if (paused) held.set(row.flow_id, row);
      else showLive(row);
      showCounts();
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
  if (refreshTimer || paused) return;
  const wait = Math.max(liveRefreshDelay, lastRefresh + liveRefreshGap - Date.now());
  refreshTimer = window.setTimeout(() => {
    refreshTimer = 0;
    if (!paused) void refreshAggregates();
  }, wait);
}

window.setInterval(() => {
  if (document.visibilityState !== "visible" || paused || down) return;
  if (filters.view === "hosts") void loadHosts(loadCtl.signal, new Date()); // last reports age
  else void refreshAggregates();
}, periodicRefresh);

fillForm(filters);
void reload();

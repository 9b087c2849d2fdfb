// The view's filters, kept in the page URL so that a link reproduces the view.
// The URL uses the API's parameter names, plus `range` (a preset relative to
// now); explicit `from`/`to` in the URL select a fixed window instead.

export const ranges: Record<string, number> = {
  "15m": 15 * 60,
  "1h": 3600,
  "6h": 6 * 3600,
  "24h": 24 * 3600,
  "7d": 7 * 24 * 3600,
  "30d": 30 * 24 * 3600,
};
export const defaultRange = "1h";

// Text and select fields passed to the API as they are.
export const fields = [
  "network_id",
  "protocol",
  "state",
  "ip",
  "port",
  "participant",
  "direction",
  "node_id",
  "src_entity_id",
  "dst_entity_id",
  "asn",
  "country",
  "src_ip",
  "dst_ip",
] as const;
// Fields without an input of their own (set by links: a new pair's flows,
// an external endpoint's network), shown as removable chips.
export const chipFields: readonly Field[] = ["src_entity_id", "dst_entity_id", "asn", "country", "src_ip", "dst_ip"];
export const chipLabels: Partial<Record<Field, string>> = {
  src_entity_id: "source",
  dst_entity_id: "destination",
  asn: "AS",
  country: "country",
  src_ip: "source address",
  dst_ip: "destination address",
};

// The page's views (URL parameter view; "" is the traffic view).
export const views = ["", "hosts", "new"] as const;
export type View = (typeof views)[number];
export type Field = (typeof fields)[number];

export interface Filters {
  values: Record<Field, string>;
  range: string; // a key of ranges, or "custom" with from/to
  from: string;
  to: string;
  // Page size of the flows table from the URL (per_page); 0: the default.
  perPage: number;
  view: View;
  // The new-connections view: window and baseline (API durations).
  window: string;
  baseline: string;
  // The flows table's order, sorted by the server: "" is start, newest first.
  sort: SortKey;
  asc: boolean;
}

// The orders the server sorts the flows listing by (API sort=, order=).
export const sortKeys = ["start", "bytes", "duration"] as const;
export type SortKey = (typeof sortKeys)[number];

export function empty(): Filters {
  const values = {} as Record<Field, string>;
  for (const f of fields) values[f] = "";
  return { values, range: defaultRange, from: "", to: "", perPage: 0, view: "", window: "", baseline: "", sort: "start", asc: false };
}

export function fromSearch(search: string): Filters {
  const p = new URLSearchParams(search);
  const f = empty();
  for (const k of fields) f.values[k] = (p.get(k) ?? "").trim();
  if (p.get("from") || p.get("to")) {
    f.range = "custom";
    f.from = p.get("from") ?? "";
    f.to = p.get("to") ?? "";
  } else {
    const r = p.get("range") ?? "";
    f.range = r in ranges ? r : defaultRange;
  }
  const n = Number(p.get("per_page"));
  if (Number.isInteger(n) && n >= 1 && n <= 1000) f.perPage = n;
  const v = (p.get("view") ?? "") as View;
  f.view = views.includes(v) ? v : "";
  f.window = p.get("window") ?? "";
  f.baseline = p.get("baseline") ?? "";
  const k = (p.get("sort") ?? "") as SortKey;
  f.sort = sortKeys.includes(k) ? k : "start";
  f.asc = p.get("order") === "asc";
  return f;
}

export function toSearch(f: Filters): string {
  const p = new URLSearchParams();
  for (const k of fields) if (f.values[k]) p.set(k, f.values[k]);
  if (f.range === "custom") {
    if (f.from) p.set("from", f.from);
    if (f.to) p.set("to", f.to);
  } else if (f.range !== defaultRange) {
    p.set("range", f.range);
  }
  if (f.perPage) p.set("per_page", String(f.perPage));
  if (f.view) p.set("view", f.view);
  if (f.window) p.set("window", f.window);
  if (f.baseline) p.set("baseline", f.baseline);
  setSort(f, p);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// timeWindow resolves the time window at `now`: from is always set; to only for a
// fixed window (relative ones stay open so that new flows belong to them).
export function timeWindow(f: Filters, now: Date): { from: Date; to: Date | null } {
  if (f.range === "custom") {
    const from = f.from ? new Date(f.from) : new Date(now.getTime() - ranges[defaultRange] * 1000);
    return { from, to: f.to ? new Date(f.to) : null };
  }
  return { from: new Date(now.getTime() - (ranges[f.range] ?? ranges[defaultRange]) * 1000), to: null };
}

// apiQuery is the filter part of an API request. time: "open" sends from
// (and to for a fixed window), "closed" always sends both, "none" neither.
export function apiQuery(f: Filters, now: Date, time: "open" | "closed" | "none"): URLSearchParams {
  const p = new URLSearchParams();
  for (const k of fields) if (f.values[k]) p.set(k, f.values[k]);
  if (time !== "none") {
    const w = timeWindow(f, now);
    p.set("from", rfc3339(w.from));
    if (w.to) p.set("to", rfc3339(w.to));
    else if (time === "closed") p.set("to", rfc3339(now));
  }
  return p;
}

// seriesQuery is apiQuery(f, now, "closed") for the time series. A window
// of more than seriesOnHour gets a step of at least an hour from the API
// (300 points at most), so its from goes down to the hour: the chart's
// first bucket is whole like the others, and the store answers from its
// rollups by hour of start instead of reading every flow of the day before
// the window (store/grains.go, "By hour of start").
export function seriesQuery(f: Filters, now: Date): URLSearchParams {
  const p = apiQuery(f, now, "closed");
  const w = timeWindow(f, now);
  if ((w.to ?? now).getTime() - w.from.getTime() > seriesOnHour) {
    p.set("from", rfc3339(new Date(Math.floor(w.from.getTime() / 3600_000) * 3600_000)));
  }
  return p;
}

// seriesOnHour: 300 buckets of 15 minutes, and a day of margin.
const seriesOnHour = (75 + 24) * 3600_000;

// setSort adds the flows order to a query (the page URL, the listing and
// its export; not the aggregates, which have no order): nothing for the
// default.
export function setSort(f: Filters, p: URLSearchParams) {
  if (f.sort !== "start") p.set("sort", f.sort);
  if (f.asc) p.set("order", "asc");
}

// rfc3339 drops the milliseconds: second precision is what people type and
// what every RFC 3339 parser accepts.
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

// inWindow tells whether a live row belongs to the view (the stream is asked
// with the same filters, but without the time window).
export function inWindow(f: Filters, startTs: string, now: Date): boolean {
  const w = timeWindow(f, now);
  const t = new Date(startTs).getTime();
  return t >= w.from.getTime() && (!w.to || t < w.to.getTime());
}

// The collector's HTTP API, same origin (paths are relative to the page, so
// a reverse proxy may mount the collector under a prefix).

export interface FlowRow {
  flow_id: string;
  host_id: string;
  host_name: string;
  network_id: string;
  protocol: number;
  src_port: number;
  dst_port: number;
  icmp_type?: number;
  icmp_code?: number;
  direction: string;
  src_ip: string;
  src_type: string;
  src_entity_id: string;
  src_entity_name: string;
  dst_ip: string;
  dst_type: string;
  dst_entity_id: string;
  dst_entity_name: string;
  start_ts: string;
  end_ts: string;
  bytes_sent: number;
  bytes_recv: number;
  packets_sent: number;
  packets_recv: number;
  status: number;
  version: string;
  active: boolean;
  // The network of an external endpoint (absent when unknown).
  src_asn?: number;
  src_as_name?: string;
  src_country?: string;
  dst_asn?: number;
  dst_as_name?: string;
  dst_country?: string;
}

export interface Totals {
  bytes: number;
  packets: number;
  flows: number;
}

export interface Talker extends Totals {
  type: string;
  id: string;
  name: string;
  ip: string;
  asn?: number; // by=asn
  as_name?: string;
  country?: string; // by=country
  prefix?: string; // by=prefix
}

export interface Entity {
  type: string;
  id: string;
  name: string;
}

export interface Edge extends Totals {
  src: Entity;
  dst: Entity;
}

export interface Series {
  step_seconds: number;
  points: Array<{ t: string } & Totals>;
}

interface Envelope<T> {
  Code: number;
  Message: string;
  Response?: T;
  Next?: string;
}

// The bearer token, when the collector requires one. Kept in localStorage so
// that a reload keeps it; never put in the URL (links get shared).
const tokenKey = "flowlog.token";

export function getToken(): string {
  try {
    return localStorage.getItem(tokenKey) ?? "";
  } catch {
    return "";
  }
}

export function setToken(t: string): void {
  try {
    if (t) localStorage.setItem(tokenKey, t);
    else localStorage.removeItem(tokenKey);
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { Accept: "application/json", ...extra };
  const t = getToken();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

// Reachability of the collector, for the page's one error banner: every
// request reports whether the collector answered (a 4xx is an answer; a
// network failure or a 5xx is not).
type StatusListener = (ok: boolean, msg: string) => void;
let statusListener: StatusListener = () => {};
export function onStatus(l: StatusListener) {
  statusListener = l;
}

// Requests made, by path (the browser test counts the live refreshes).
export const requestCounts: Record<string, number> = {};
(globalThis as { flowlogRequests?: Record<string, number> }).flowlogRequests = requestCounts;

async function getJSON<T>(path: string, signal?: AbortSignal): Promise<Envelope<T>> {
  const name = path.split("?")[0];
  requestCounts[name] = (requestCounts[name] ?? 0) + 1;
  let resp: Response;
  try {
    resp = await fetch(path, { headers: headers(), signal });
  } catch (e) {
    if (!signal?.aborted) statusListener(false, e instanceof Error ? e.message : String(e));
    throw e;
  }
  statusListener(resp.status < 500, `${name}: ${resp.status} ${resp.statusText}`);
  let body: Envelope<T> | undefined;
  try {
    body = (await resp.json()) as Envelope<T>;
  } catch {
    // not JSON: reported below from the status
  }
  if (!resp.ok || !body || (body.Code && body.Code >= 400)) {
    let msg = body?.Message || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401) msg += " (set the API token, top right)";
    throw new ApiError(resp.status, `${path.split("?")[0]}: ${msg}`);
  }
  return body;
}

const base = "api/v1/";

function withQuery(path: string, q: URLSearchParams): string {
  const s = q.toString();
  return s ? `${base}${path}?${s}` : `${base}${path}`;
}

export async function listFlows(
  q: URLSearchParams,
  perPage: number,
  cursor: string,
  signal?: AbortSignal,
): Promise<{ rows: FlowRow[]; next: string }> {
  const p = new URLSearchParams(q);
  p.set("per_page", String(perPage));
  if (cursor) p.set("cursor", cursor);
  const r = await getJSON<FlowRow[]>(withQuery("flows", p), signal);
  return { rows: r.Response ?? [], next: r.Next ?? "" };
}

export async function top(
  q: URLSearchParams,
  by: string,
  metric: string,
  limit: number,
  signal?: AbortSignal,
): Promise<Talker[]> {
  const p = new URLSearchParams(q);
  // "prefix-24-48": external endpoints by IPv4 /24 and IPv6 /48 prefixes.
  const [group, v4, v6] = by.split("-");
  p.set("by", group);
  if (v4) p.set("prefix4", v4);
  if (v6) p.set("prefix6", v6);
  p.set("metric", metric);
  p.set("side", "any");
  p.set("limit", String(limit));
  return (await getJSON<Talker[]>(withQuery("aggregates/top", p), signal)).Response ?? [];
}

export async function matrix(q: URLSearchParams, limit: number, signal?: AbortSignal): Promise<Edge[]> {
  const p = new URLSearchParams(q);
  p.set("limit", String(limit));
  return (await getJSON<Edge[]>(withQuery("aggregates/matrix", p), signal)).Response ?? [];
}

export async function timeseries(q: URLSearchParams, signal?: AbortSignal): Promise<Series> {
  const r = await getJSON<Series>(withQuery("aggregates/timeseries", q), signal);
  return r.Response ?? { step_seconds: 60, points: [] };
}

export interface Stacked {
  step_seconds: number;
  by: string;
  groups: Array<Totals & { key: string; points: Series["points"] }>;
}

export async function stacked(q: URLSearchParams, by: string, limit: number, signal?: AbortSignal): Promise<Stacked> {
  const p = new URLSearchParams(q);
  p.set("by", by);
  p.set("limit", String(limit));
  const r = await getJSON<Stacked>(withQuery("aggregates/stacked", p), signal);
  return r.Response ?? { step_seconds: 60, by, groups: [] };
}

export async function activeCount(q: URLSearchParams, signal?: AbortSignal): Promise<number> {
  const r = await getJSON<{ flows: number }>(withQuery("aggregates/active", q), signal);
  return r.Response?.flows ?? 0;
}

export interface Host {
  host_id: string;
  host_name: string;
  networks: string[];
  last_report: string;
  quiet: boolean;
  events: number;
  events_per_second: number;
  flows: number;
  active: number;
  bytes: number;
  rejected: number;
  // The wire generation and agent software (gRPC user-agent) it reports
  // through, one per generation, the last seen first.
  agents: { generation: string; agent: string; last_seen: string }[];
}

export async function hosts(q: URLSearchParams, signal?: AbortSignal): Promise<Host[]> {
  return (await getJSON<Host[]>(withQuery("hosts", q), signal)).Response ?? [];
}

export interface Endpoint extends Entity {
  ip: string;
}

export interface NewPair extends Totals {
  src: Endpoint;
  dst: Endpoint;
  dst_port: number;
  protocol: number;
  first: string;
  last: string;
}

export interface NewPairs {
  from: string;
  to: string;
  baseline_from: string;
  pairs: NewPair[];
}

export async function newPairs(q: URLSearchParams, signal?: AbortSignal): Promise<NewPairs> {
  const r = await getJSON<NewPairs>(withQuery("new", q), signal);
  return r.Response ?? { from: "", to: "", baseline_from: "", pairs: [] };
}

export interface Suggestion {
  field: "participant" | "node_id" | "network_id";
  value: string;
  label: string;
  type?: string;
  flows: number;
}

export async function suggest(q: URLSearchParams, signal?: AbortSignal): Promise<Suggestion[]> {
  return (await getJSON<Suggestion[]>(withQuery("suggest", q), signal)).Response ?? [];
}

// observations lists the rows of the same connection (the same 5-tuple
// around the same start) reported by every host. It asks for every
// observation (observations=all) where the collector documents that
// parameter, else the plain listing, which lists each host's row.
let observationsParam: Promise<boolean> | null = null;
function hasObservationsParam(): Promise<boolean> {
  observationsParam ??= fetch(`${base}openapi.json`, { headers: headers() })
    .then((r) => r.json())
    .then((d) => JSON.stringify(d?.paths?.["/api/v1/flows"]?.get?.parameters ?? []).includes("observations"))
    .catch(() => false);
  return observationsParam;
}

export async function observations(r: FlowRow, signal?: AbortSignal): Promise<FlowRow[]> {
  const t = new Date(r.start_ts).getTime();
  const q = new URLSearchParams({
    network_id: r.network_id,
    ip: r.dst_ip,
    protocol: String(r.protocol),
    from: new Date(t - 5000).toISOString(),
    to: new Date(t + 5000).toISOString(),
    per_page: "100",
  });
  if (await hasObservationsParam()) q.set("observations", "all");
  const rows = (await getJSON<FlowRow[]>(withQuery("flows", q), signal)).Response ?? [];
  const same = (a: FlowRow) =>
    (a.src_ip === r.src_ip && a.src_port === r.src_port && a.dst_ip === r.dst_ip && a.dst_port === r.dst_port) ||
    (a.src_ip === r.dst_ip && a.src_port === r.dst_port && a.dst_ip === r.src_ip && a.dst_port === r.src_port);
  return rows.filter(same);
}

// exportUrl is the streamed export of the filter q (format csv or jsonl).
export function exportUrl(q: URLSearchParams, format: "csv" | "jsonl"): string {
  const p = new URLSearchParams(q);
  p.set("format", format);
  return withQuery("flows/export", p);
}

// download saves the export: a plain link when no token is needed (the
// browser streams it to disk), else a fetch with the token into a file.
export async function download(url: string, name: string): Promise<void> {
  const a = document.createElement("a");
  a.download = name;
  if (!getToken()) {
    a.href = url;
    a.click();
    return;
  }
  const resp = await fetch(url, { headers: headers({ Accept: "*/*" }) });
  if (!resp.ok) throw new ApiError(resp.status, `export: ${resp.status} ${resp.statusText}`);
  a.href = URL.createObjectURL(await resp.blob());
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

export async function healthy(): Promise<boolean> {
  try {
    const r = await fetch("healthz", { cache: "no-store" });
    return r.ok;
  } catch {
    return false;
  }
}

export interface TailHandlers {
  onOpen(): void;
  onFlow(row: FlowRow): void;
  onLost(n: number): void;
  onError(msg: string, final?: boolean): void;
}

// tail follows /api/v1/flows/stream (server-sent events). It reads the stream
// with fetch rather than EventSource so that it can send the Authorization
// header, and reconnects with backoff until stopped. Returns the stop function.
export function tail(q: URLSearchParams, h: TailHandlers): () => void {
  const ctl = new AbortController();
  let delay = 1000;
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const resp = await fetch(withQuery("flows/stream", q), {
          headers: headers({ Accept: "text/event-stream" }),
          signal: ctl.signal,
          cache: "no-store",
        });
        if (!resp.ok || !resp.body) {
          let msg = `${resp.status} ${resp.statusText}`;
          try {
            msg = ((await resp.json()) as Envelope<unknown>).Message || msg;
          } catch {
            // keep the status line
          }
          // A refused request (bad filter, missing token) fails the same way
          // again: stop until the view changes.
          if (resp.status >= 400 && resp.status < 500 && resp.status !== 408 && resp.status !== 429) {
            h.onError(`live tail: ${msg}`, true);
            return;
          }
          throw new Error(`live tail: ${msg}`);
        }
        h.onOpen();
        delay = 1000;
        await readEvents(resp.body, (event, data) => {
          if (event === "flow") h.onFlow(JSON.parse(data) as FlowRow);
          else if (event === "lost") h.onLost(Number((JSON.parse(data) as { lost: number }).lost) || 0);
        });
        if (!ctl.signal.aborted) h.onError("live tail: the collector closed the stream; reconnecting", false);
      } catch (e) {
        if (ctl.signal.aborted) return;
        h.onError(e instanceof Error ? e.message : String(e), false);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
    }
  };
  void run();
  return () => ctl.abort();
}

// readEvents parses a text/event-stream body (the subset the collector
// sends: event, data, comments) and calls on for each dispatched event.
async function readEvents(body: ReadableStream<Uint8Array>, on: (event: string, data: string) => void) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, buf[nl - 1] === "\r" ? nl - 1 : nl);
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (data.length) {
          try {
            on(event || "message", data.join("\n"));
          } catch (e) {
            console.error("live tail: bad event", e);
          }
        }
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? "" : line.slice(colon + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "event") event = v;
      else if (field === "data") data.push(v);
    }
  }
}

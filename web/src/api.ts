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

async function getJSON<T>(path: string, signal?: AbortSignal): Promise<Envelope<T>> {
  const resp = await fetch(path, { headers: headers(), signal });
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
  p.set("by", by);
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

export async function activeCount(q: URLSearchParams, signal?: AbortSignal): Promise<number> {
  const r = await getJSON<{ flows: number }>(withQuery("aggregates/active", q), signal);
  return r.Response?.flows ?? 0;
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

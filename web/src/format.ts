// Human-readable sizes, times and names.

import { protocolNames } from "./domain.gen";

const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${Math.round(n || 0)} B`;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

export function count(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

// protocol prints a protocol as the API and the CLI do (names from the Go
// domain package, generated into domain.gen.ts).
export function protocol(n: number): string {
  return protocolNames[n] ?? String(n);
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

// One time format on the whole page: 24-hour clock, ISO date when not
// today, in the zone the user picked (local or UTC), which the page shows.
export type Zone = "local" | "utc";
let zone: Zone = "local";

export function setZone(z: Zone) {
  zone = z;
}
export function getZone(): Zone {
  return zone;
}

// zoneLabel names the zone times are shown in: "UTC" or "local (UTC+01:00)".
export function zoneLabel(at = new Date()): string {
  if (zone === "utc") return "UTC";
  const off = -at.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  return `local (UTC${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)})`;
}

interface Parts {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  ms: number;
}

function parts(d: Date): Parts {
  return zone === "utc"
    ? { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds() }
    : { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds() };
}

const dateOf = (p: Parts) => `${p.y}-${pad(p.mo)}-${pad(p.d)}`;

// time prints a start time: the clock for today, with the date otherwise.
export function time(iso: string | Date, now = new Date()): string {
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(d);
  const clock = `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
  return dateOf(p) === dateOf(parts(now)) ? clock : `${dateOf(p)} ${clock}`;
}

// timeMs prints a full time with milliseconds (the flow detail).
export function timeMs(iso: string | Date): string {
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(d);
  return `${dateOf(p)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}.${pad(p.ms, 3)}`;
}

// inputValue renders a time for the range inputs, in the page's format and
// zone; fromInput reads one back ("YYYY-MM-DD HH:MM[:SS]"), null when it is
// not such a time.
export function inputValue(d: Date): string {
  const p = parts(d);
  return `${dateOf(p)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
}
export function fromInput(v: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(v.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x ?? 0));
  const t = zone === "utc" ? new Date(Date.UTC(y, mo - 1, d, h, mi, s)) : new Date(y, mo - 1, d, h, mi, s);
  // Date rolls 2026-02-31 over to March: refuse instead.
  const back = parts(t);
  return back.mo === mo && back.d === d && back.h === h ? t : null;
}

// axisTime labels the chart's time axis in the same format and zone; the
// step decides how much of the time is worth printing.
export function axisTime(d: Date, stepSeconds: number): string {
  const p = parts(d);
  if (stepSeconds >= 86400) return dateOf(p);
  const clock = stepSeconds < 60 ? `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}` : `${pad(p.h)}:${pad(p.mi)}`;
  return p.h === 0 && p.mi === 0 && p.s === 0 ? `${pad(p.mo)}-${pad(p.d)} ${clock}` : clock;
}

// Rates: bits per second with SI prefixes (the networking convention, as
// interfaces are rated), packets per second; sizes stay IEC bytes.
const siUnits = ["", "k", "M", "G", "T"];
function si(n: number): string {
  let i = 0;
  while (Math.abs(n) >= 1000 && i < siUnits.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(1) : n < 10 ? n.toFixed(n > 0 && n < 1 ? 2 : 1).replace(/\.0+$/, "") : Math.round(n)} ${siUnits[i]}`;
}
export function bitRate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${si((bytes * 8) / seconds)}bit/s` : "–";
}
export function packetRate(packets: number, seconds: number): string {
  return seconds > 0 ? `${si(packets / seconds)}pkt/s` : "–";
}
// eventRate: per second, or per minute below one a second (a quiet host's
// rate must not round to 0).
export function eventRate(perSecond: number): string {
  if (perSecond > 0 && perSecond < 1) return `${si(perSecond * 60)}ev/min`;
  return `${si(perSecond)}ev/s`;
}

export function ago(iso: string, now = new Date()): string {
  const s = Math.round((now.getTime() - new Date(iso).getTime()) / 1000);
  if (s < 0) return "in the future";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.round((s % 86400) / 3600)}h`;
}

// ended reports whether an end_ts is set (active flows carry the epoch).
export function ended(iso: string): boolean {
  const t = new Date(iso).getTime();
  return Number.isFinite(t) && t > 0;
}

// entity names a participant: its name, else its id, else its type.
export function entity(type: string, id: string, name: string): string {
  return name || id || type || "?";
}

// endpoint names one end of a flow: an unnamed one (an external address)
// by its address.
export function endpoint(type: string, id: string, name: string, ip: string): string {
  return name || id || ip || type || "?";
}

// entityKey identifies a participant across the aggregates.
export function entityKey(type: string, id: string, name: string): string {
  return `${type}:${id || name}`;
}

// prefixOf is the network an external address belongs to, as the collector
// groups them by default (flowlog.DefaultPrefixLens): IPv4 /24, IPv6 /48.
export function prefixOf(ip: string): string {
  if (ip.includes(".") && !ip.includes(":")) return ip.split(".").slice(0, 3).concat("0").join(".") + "/24";
  const [head, tail = ""] = ip.split("::");
  const a = head ? head.split(":") : [];
  const b = tail ? tail.split(":") : [];
  if (!ip.includes(":") || a.length + b.length > 8 || b.some((g) => g.includes("."))) return "";
  const groups = ip.includes("::") ? [...a, ...Array(8 - a.length - b.length).fill("0"), ...b] : a;
  const net = groups.slice(0, 3).map((g) => parseInt(g || "0", 16).toString(16));
  return `${net.join(":")}::/48`;
}

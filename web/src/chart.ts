// The time series: bytes per bucket (bars) and flows per bucket (line), with
// uPlot. Buckets the collector leaves out are drawn as zeros. Dragging over
// the chart zooms the page's time range to the selection; times are in the
// page's one format and zone.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series, Stacked } from "./api";
import * as fmt from "./format";

// Colours of the stacked groups (the rest is grey).
const palette = ["#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#7c3aed", "#0d9488"];

// groupLabel names a group of a stacked series.
function groupLabel(by: string, key: string): string {
  if (key === "") return "other";
  if (by === "protocol") return fmt.protocol(Number(key));
  if (by === "port") return `port ${key}`;
  return key;
}

// At most this many buckets are filled in; beyond, the points are plotted as
// they came.
const maxBuckets = 5000;

export class TimeChart {
  private plot: uPlot | null = null;
  private step = 60;
  private plotEl: HTMLElement;
  private stepEl: HTMLElement;
  private packets = 0;
  private seconds = 0;
  private last: { s: Series; from: Date; to: Date; stack: Stacked | null } | null = null;
  // The plotted totals (the summary), and for a stacked chart each group's
  // own bytes per bucket (the legend shows those, not the cumulated sums
  // the bars are drawn with).
  private bytesY: number[] = [];
  private flowsY: number[] = [];
  private own: number[][] = [];
  private shape = "";

  constructor(
    private root: HTMLElement,
    private onZoom: (from: Date, to: Date) => void,
  ) {
    this.plotEl = root.querySelector<HTMLElement>(".plot")!;
    this.stepEl = root.querySelector<HTMLElement>("[data-testid=timeseries-step]")!;
    new ResizeObserver(() => this.resize()).observe(this.plotEl);
  }

  // rebuild draws the chart anew (after a theme or time zone change).
  rebuild() {
    this.plot?.destroy();
    this.plot = null;
    if (this.last) this.set(this.last.s, this.last.from, this.last.to, this.last.stack);
  }

  // set plots a series; with stack, its bytes as stacked bars by group.
  set(s: Series, from: Date, to: Date, stack: Stacked | null = null) {
    this.last = { s, from, to, stack };
    const step = s.step_seconds > 0 ? s.step_seconds : 60;
    this.step = step;
    this.seconds = Math.max(0, (to.getTime() - from.getTime()) / 1000);
    this.packets = 0;
    const byT = new Map<number, { bytes: number; flows: number }>();
    for (const p of s.points) {
      const t = Math.floor(new Date(p.t).getTime() / 1000);
      const cur = byT.get(t) ?? { bytes: 0, flows: 0 };
      cur.bytes += p.bytes;
      cur.flows += p.flows;
      this.packets += p.packets;
      byT.set(t, cur);
    }
    let xs: number[];
    const first = Math.floor(from.getTime() / 1000 / step) * step;
    const last = Math.floor(to.getTime() / 1000 / step) * step;
    const aligned = [...byT.keys()].every((t) => t % step === 0 && t >= first && t <= last);
    if (aligned && (last - first) / step < maxBuckets) {
      xs = [];
      for (let t = first; t <= last; t += step) xs.push(t);
    } else {
      xs = [...byT.keys()].sort((a, b) => a - b);
    }
    const bytesY = xs.map((t) => byT.get(t)?.bytes ?? 0);
    const flowsY = xs.map((t) => byT.get(t)?.flows ?? 0);
    this.bytesY = bytesY;
    this.flowsY = flowsY;
    let labels = ["bytes"];
    let bars: number[][] = [bytesY];
    this.own = [bytesY];
    if (stack && stack.groups.length && stack.step_seconds === step) {
      // Cumulated sums, drawn from the total down so each group's part of
      // a bar shows; the legend lists groups biggest first.
      const own = stack.groups.map((g) => {
        const m = new Map(g.points.map((p) => [Math.floor(new Date(p.t).getTime() / 1000), p.bytes]));
        return xs.map((t) => m.get(t) ?? 0);
      });
      const cum: number[][] = [];
      own.forEach((ys, i) => cum.push(ys.map((v, j) => v + (i ? cum[i - 1][j] : 0))));
      labels = stack.groups.map((g) => groupLabel(stack.by, g.key)).reverse();
      this.root.dataset.stack = JSON.stringify(Object.fromEntries(stack.groups.map((g) => [groupLabel(stack.by, g.key), g.bytes])));
      bars = cum.reverse();
      this.own = own.reverse();
    }
    if (labels.length === 1) delete this.root.dataset.stack;
    const shape = labels.join("\u0000");
    if (this.plot && shape !== this.shape) {
      this.plot.destroy();
      this.plot = null;
    }
    this.shape = shape;
    const data: uPlot.AlignedData = [xs, ...bars, flowsY];
    if (!this.plot) this.create(data, labels);
    else this.plot.setData(data);
    this.stepEl.textContent = `per ${fmt.duration(step * 1000).replace(/ /g, "")} bucket`;
    this.summarize();
  }

  // summarize publishes what is plotted (read back from uPlot's own data) for
  // the browser test and for people (the legend above the chart).
  private summarize() {
    const ys = this.bytesY;
    const fs = this.flowsY;
    let points = 0;
    let bytes = 0;
    let flows = 0;
    for (let i = 0; i < ys.length; i++) {
      if (ys[i] || fs[i]) points++;
      bytes += ys[i] ?? 0;
      flows += fs[i] ?? 0;
    }
    this.root.dataset.points = String(points);
    this.root.dataset.summary = JSON.stringify({ points, buckets: ys.length, bytes, flows });
    const total = this.root.querySelector<HTMLElement>("[data-testid=timeseries-total]")!;
    const text = `${fmt.bytes(bytes)} in ${fmt.count(flows)} flow${flows === 1 ? "" : "s"}`;
    const rates = `${fmt.bitRate(bytes, this.seconds)} · ${fmt.packetRate(this.packets, this.seconds)}`;
    for (const [sel, v] of [[".sum", text], [".rates", rates]]) {
      const el = total.querySelector(sel) ?? total.appendChild(Object.assign(document.createElement("span"), { className: sel.slice(1) }));
      if (el.textContent !== v) el.textContent = v;
    }
    total.title = `averages over the range: ${fmt.count(this.packets)} packets`;
  }

  private size() {
    const r = this.plotEl.getBoundingClientRect();
    return { width: Math.max(200, Math.floor(r.width)), height: 220 };
  }

  private resize() {
    if (this.plot) this.plot.setSize(this.size());
  }

  private create(data: uPlot.AlignedData, labels: string[]) {
    const css = getComputedStyle(document.documentElement);
    const accent = css.getPropertyValue("--accent").trim() || "#2563eb";
    const accent2 = css.getPropertyValue("--accent-2").trim() || "#f59e0b";
    const grid = { stroke: "rgba(127,127,127,0.15)", width: 1 };
    const opts: uPlot.Options = {
      ...this.size(),
      padding: [8, 8, 0, 0],
      // Drag to select a range: the page zooms to it (the hook), the chart
      // does not zoom by itself.
      cursor: { drag: { x: true, y: false, setScale: false } },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width >= 4) {
              const a = u.posToVal(u.select.left, "x");
              const b = u.posToVal(u.select.left + u.select.width, "x");
              this.onZoom(new Date(a * 1000), new Date(b * 1000));
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
      },
      tzDate: (ts) => (fmt.getZone() === "utc" ? uPlot.tzDate(new Date(ts * 1000), "Etc/UTC") : new Date(ts * 1000)),
      legend: { show: true, live: true },
      scales: {
        // x ends one step after the last bucket: a bar starts at its bucket.
        x: { time: true, range: (_u, min, max) => [min, max + this.step] },
        bytes: { auto: true, range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1024] },
        flows: { range: (_u, _min, max) => [0, max > 0 ? max * 1.2 : 1] },
      },
      series: [
        { value: (_u, v) => (v == null ? "–" : fmt.time(new Date(v * 1000))) },
        ...labels.map((label, i): uPlot.Series => {
          const color = labels.length === 1 ? accent : label === "other" ? "#94a3b8" : palette[(labels.length - 1 - i) % palette.length];
          return {
            label,
            scale: "bytes",
            stroke: color,
            fill: color + (labels.length === 1 ? "66" : "cc"),
            width: 1,
            paths: uPlot.paths.bars!({ size: [0.8, 40], align: 1 }),
            points: { show: false },
            value: (_u, _v, _si, idx) => {
              const v = idx == null ? null : this.own[i]?.[idx];
              return v == null ? "–" : `${fmt.bytes(v)} (${fmt.bitRate(v, this.step)})`;
            },
          };
        }),
        {
          label: "flows",
          scale: "flows",
          stroke: accent2,
          width: 1.5,
          paths: uPlot.paths.stepped!({ align: 1 }),
          points: { show: false },
          value: (_u, v) => (v == null ? "–" : String(v)),
        },
      ],
      axes: [
        { grid, stroke: "#888", values: (_u, vals, _ax, _space, incr) => vals.map((v) => fmt.axisTime(new Date(v * 1000), incr)) },
        { scale: "bytes", grid, stroke: "#888", size: 70, values: (_u, vals) => vals.map((v) => fmt.bytes(v)) },
        { scale: "flows", side: 1, grid: { show: false }, stroke: accent2, size: 40, values: (_u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")) },
      ],
    };
    this.plot = new uPlot(opts, data, this.plotEl);
  }
}

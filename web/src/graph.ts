// Who talks to whom, as a two-column flow diagram: sources on the left,
// destinations on the right, one curve per pair of the traffic matrix, its
// width by bytes. Each column is sorted by name and every participant has a
// fixed-height row, so labels never overlap (at 50 participants too: the
// panel scrolls) and the layout depends only on who is there: a live update
// that changes the numbers changes widths and numbers in place, nothing
// moves. A force layout re-randomised at each new pair, and tangled beyond
// ten nodes, which is what this replaced.

import type { Edge, Entity } from "./api";
import * as fmt from "./format";

const svgNS = "http://www.w3.org/2000/svg";
const rowH = 24;
const pad = 10;

interface Side {
  key: string;
  label: string;
  type: string;
  pick: string;
  bytes: number;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class TalkGraph {
  private canvas: HTMLElement;
  private shape = "";
  private edges: Edge[] = [];
  private width = 0;
  // The elements of the drawn layout, by key, updated in place.
  private paths = new Map<string, SVGPathElement>();
  private nodeVals = new Map<string, SVGTextElement>();

  constructor(
    private root: HTMLElement,
    private onPick: (value: string) => void,
  ) {
    this.canvas = root.querySelector<HTMLElement>(".graph-canvas")!;
    new ResizeObserver(() => {
      const w = Math.floor(this.canvas.clientWidth);
      if (w && w !== this.width) {
        this.width = w;
        this.shape = ""; // redraw at the new width
        this.set(this.edges);
      }
    }).observe(this.canvas);
  }

  set(edges: Edge[]) {
    this.edges = edges;
    const src = new Map<string, Side>();
    const dst = new Map<string, Side>();
    const all = new Set<string>();
    const add = (m: Map<string, Side>, e: Entity, b: number) => {
      const key = fmt.entityKey(e.type, e.id, e.name);
      const label = fmt.entity(e.type, e.id, e.name);
      all.add(label);
      const n = m.get(key) ?? { key, label, type: e.type, pick: e.id || e.name, bytes: 0 };
      n.bytes += b;
      m.set(key, n);
      return key;
    };
    let total = 0;
    const pairs = edges.map((e) => {
      total += e.bytes;
      return { s: add(src, e.src, e.bytes), d: add(dst, e.dst, e.bytes), e };
    });
    this.root.dataset.nodes = JSON.stringify([...all].sort());
    this.root.dataset.edges = String(edges.length);
    this.root.dataset.bytes = String(total);
    (this.root.querySelector(".empty") as HTMLElement).hidden = edges.length > 0;

    const byLabel = (a: Side, b: Side) => a.label.localeCompare(b.label) || a.key.localeCompare(b.key);
    const left = [...src.values()].sort(byLabel);
    const right = [...dst.values()].sort(byLabel);
    const shape = `${this.width}|${left.map((n) => n.key).join(",")}|${right.map((n) => n.key).join(",")}|${pairs.map((p) => `${p.s}>${p.d}`).sort().join(",")}`;
    const maxEdge = Math.max(1, ...edges.map((e) => e.bytes));
    const widthOf = (b: number) => 1.5 + (10 * Math.log1p(b)) / Math.log1p(maxEdge);
    if (shape === this.shape) {
      // Same participants and pairs (a live refresh): numbers change in place.
      for (const p of pairs) {
        const path = this.paths.get(`${p.s}>${p.d}`);
        if (!path) continue;
        path.setAttribute("stroke-width", widthOf(p.e.bytes).toFixed(2));
        path.querySelector("title")!.textContent = edgeTitle(p.e);
      }
      for (const [side, list] of [["s", left], ["d", right]] as const) {
        for (const n of list) {
          const t = this.nodeVals.get(`${side}:${n.key}`);
          if (t) t.textContent = fmt.bytes(n.bytes);
        }
      }
      return;
    }
    this.shape = shape;
    this.draw(left, right, pairs, widthOf);
  }

  private draw(left: Side[], right: Side[], pairs: Array<{ s: string; d: string; e: Edge }>, widthOf: (b: number) => number) {
    this.paths.clear();
    this.nodeVals.clear();
    const w = Math.max(280, this.width || this.canvas.clientWidth || 600);
    const rows = Math.max(left.length, right.length);
    const h = rows * rowH + 2 * pad;
    // Labels take up to a third of the width on each side; the middle holds
    // the curves.
    const labelW = Math.min(200, Math.floor(w * 0.33));
    const xL = labelW;
    const xR = w - labelW;
    const root = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "who talks to whom" });
    const yOf = new Map<string, number>();
    const layout: Record<string, number> = {};
    // Each column is centred vertically: a short column does not hug the top.
    const top = (n: number) => pad + ((rows - n) * rowH) / 2 + rowH / 2;
    left.forEach((n, i) => {
      yOf.set(`s:${n.key}`, top(left.length) + i * rowH);
      layout[`src ${n.label}`] = top(left.length) + i * rowH;
    });
    right.forEach((n, i) => {
      yOf.set(`d:${n.key}`, top(right.length) + i * rowH);
      layout[`dst ${n.label}`] = top(right.length) + i * rowH;
    });
    this.root.dataset.layout = JSON.stringify(layout);

    const curves = svg("g", { class: "curves" });
    // Thin curves on top of thick ones, so none disappears.
    for (const p of [...pairs].sort((a, b) => b.e.bytes - a.e.bytes)) {
      const y1 = yOf.get(`s:${p.s}`)!;
      const y2 = yOf.get(`d:${p.d}`)!;
      const mid = (xL + xR) / 2;
      const path = svg("path", {
        d: `M${xL + 6},${y1} C${mid},${y1} ${mid},${y2} ${xR - 6},${y2}`,
        class: `curve t-${p.e.src.type}`,
        "stroke-width": widthOf(p.e.bytes).toFixed(2),
        "data-src": p.s,
        "data-dst": p.d,
      });
      const title = svg("title");
      title.textContent = edgeTitle(p.e);
      path.append(title);
      this.paths.set(`${p.s}>${p.d}`, path);
      curves.append(path);
    }
    root.append(curves);

    // On a narrow panel the names get the room the byte counts had.
    const showVal = w >= 520;
    const chars = Math.max(6, Math.floor((labelW - (showVal ? 70 : 16)) / 6.6));
    const column = (list: Side[], side: "s" | "d") => {
      const g = svg("g", { class: `column ${side === "s" ? "sources" : "destinations"}` });
      for (const n of list) {
        const y = yOf.get(`${side}:${n.key}`)!;
        const x = side === "s" ? xL : xR;
        const node = svg("g", { class: `gnode t-${n.type}`, "data-key": n.key, tabindex: 0, role: "link" });
        const title = svg("title");
        title.textContent = `${n.label} (${n.type}): only flows of ${n.label}`;
        node.append(title);
        node.append(svg("rect", { x: side === "s" ? 4 : x - 4, y: y - rowH / 2 + 2, width: labelW - 4, height: rowH - 4, rx: 4, class: "hit" }));
        node.append(svg("circle", { cx: x, cy: y, r: 5 }));
        const label = svg("text", { x: side === "s" ? x - 10 : x + 10, y: y + 4, "text-anchor": side === "s" ? "end" : "start", class: "label" });
        label.textContent = n.label.length > chars ? n.label.slice(0, chars - 1) + "…" : n.label;
        const val = svg("text", { x: side === "s" ? 8 : w - 8, y: y + 4, "text-anchor": side === "s" ? "start" : "end", class: "val" });
        val.textContent = fmt.bytes(n.bytes);
        this.nodeVals.set(`${side}:${n.key}`, val);
        node.append(label);
        if (showVal) node.append(val);
        const pick = () => n.pick && this.onPick(n.pick);
        node.addEventListener("click", pick);
        node.addEventListener("keydown", (e) => (e as KeyboardEvent).key === "Enter" && pick());
        // Hovering a participant highlights its curves.
        node.addEventListener("mouseenter", () => {
          root.classList.add("focus");
          for (const [k, p] of this.paths) if (k.split(">")[side === "s" ? 0 : 1] === n.key) p.classList.add("on");
        });
        node.addEventListener("mouseleave", () => {
          root.classList.remove("focus");
          for (const p of this.paths.values()) p.classList.remove("on");
        });
        g.append(node);
      }
      return g;
    };
    root.append(column(left, "s"), column(right, "d"));
    this.canvas.replaceChildren(root);
  }
}

function edgeTitle(e: Edge): string {
  return `${fmt.entity(e.src.type, e.src.id, e.src.name)} → ${fmt.entity(e.dst.type, e.dst.id, e.dst.name)}: ${fmt.bytes(e.bytes)}, ${fmt.count(e.packets)} packets, ${e.flows} flow${e.flows === 1 ? "" : "s"}`;
}

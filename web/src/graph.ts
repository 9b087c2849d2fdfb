// Who talks to whom: participants as nodes, an edge from source to
// destination weighted by bytes (width) for each cell of the traffic matrix.

import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import type { Edge } from "./api";
import * as fmt from "./format";

const typeColors: Record<string, string> = {
  node: "#2563eb",
  user: "#16a34a",
  extclient: "#9333ea",
  egress_route: "#ea580c",
  external: "#64748b",
};

export class TalkGraph {
  private cy: Core | null = null;
  private canvas: HTMLElement;
  private shape = "";

  constructor(
    private root: HTMLElement,
    private onPick: (value: string) => void,
  ) {
    this.canvas = root.querySelector<HTMLElement>(".graph-canvas")!;
    new ResizeObserver(() => this.cy?.resize()).observe(this.canvas);
  }

  set(edges: Edge[]) {
    const nodes = new Map<string, { label: string; type: string; pick: string; bytes: number }>();
    const node = (e: Edge["src"], b: number) => {
      const key = fmt.entityKey(e.type, e.id, e.name);
      const n = nodes.get(key) ?? { label: fmt.entity(e.type, e.id, e.name), type: e.type, pick: e.id || e.name, bytes: 0 };
      n.bytes += b;
      nodes.set(key, n);
      return key;
    };
    const maxEdge = Math.max(1, ...edges.map((e) => e.bytes));
    const els: ElementDefinition[] = [];
    let total = 0;
    edges.forEach((e, i) => {
      const s = node(e.src, e.bytes);
      const d = node(e.dst, e.bytes);
      total += e.bytes;
      els.push({
        group: "edges",
        data: {
          id: `e${i}:${s}>${d}`,
          source: s,
          target: d,
          bytes: e.bytes,
          flows: e.flows,
          label: e.bytes ? fmt.bytes(e.bytes) : `${e.flows} flow${e.flows === 1 ? "" : "s"}`,
          w: 1 + (7 * Math.log1p(e.bytes)) / Math.log1p(maxEdge),
        },
      });
    });
    const maxNode = Math.max(1, ...[...nodes.values()].map((n) => n.bytes));
    for (const [key, n] of nodes) {
      els.unshift({
        group: "nodes",
        data: { id: key, label: n.label, type: n.type, pick: n.pick, size: 18 + (26 * Math.sqrt(n.bytes)) / Math.sqrt(maxNode) },
      });
    }
    this.root.dataset.nodes = JSON.stringify([...nodes.values()].map((n) => n.label).sort());
    this.root.dataset.edges = String(edges.length);
    this.root.dataset.bytes = String(total);
    (this.root.querySelector(".empty") as HTMLElement).hidden = edges.length > 0;

    const shape = els.map((e) => e.data.id).join("|");
    if (this.cy && shape === this.shape) {
      // Same participants and pairs (a live refresh): only the weights change.
      this.cy.batch(() => {
        for (const e of els) this.cy!.getElementById(e.data.id!).data(e.data);
      });
      return;
    }
    this.shape = shape;
    if (!this.cy) this.create();
    const cy = this.cy!;
    cy.elements().remove();
    cy.add(els);
    cy.layout(
      nodes.size <= 6
        ? { name: "circle", animate: false, padding: 40, avoidOverlap: true }
        : { name: "cose", animate: false, padding: 40, randomize: true, nodeRepulsion: () => 12000, idealEdgeLength: () => 120 },
    ).run();
    cy.fit(undefined, 40);
    // A small graph fitted to the panel would be blown up; keep it life-size.
    if (cy.zoom() > 1.2) {
      cy.zoom(1.2);
      cy.center();
    }
  }

  private create() {
    this.cy = cytoscape({
      container: this.canvas,
      minZoom: 0.2,
      maxZoom: 3,
      style: [
        {
          selector: "node",
          style: {
            width: "data(size)",
            height: "data(size)",
            "background-color": (n) => typeColors[n.data("type") as string] ?? "#64748b",
            label: "data(label)",
            "font-family": "system-ui, sans-serif",
            "font-size": 11,
            color: "#1f2937",
            "text-valign": "bottom",
            "text-margin-y": 4,
            "text-outline-color": "#ffffff",
            "text-outline-width": 2,
          },
        },
        {
          selector: "edge",
          style: {
            width: "data(w)",
            "line-color": "#94a3b8",
            "target-arrow-color": "#94a3b8",
            "target-arrow-shape": "triangle",
            "arrow-scale": 0.8,
            "curve-style": "bezier",
            label: "data(label)",
            "font-family": "system-ui, sans-serif",
            "font-size": 9,
            color: "#475569",
            "text-rotation": "autorotate",
            "text-background-color": "#ffffff",
            "text-background-opacity": 0.8,
            "text-background-padding": "1px",
          },
        },
        { selector: "node:active, node:selected", style: { "border-width": 3, "border-color": "#f59e0b" } },
      ],
    });
    this.cy.on("tap", "node", (e) => {
      const v = e.target.data("pick") as string;
      if (v) this.onPick(v);
    });
  }
}

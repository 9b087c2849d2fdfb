// The hosts view (every reporting host: last report, event rate, flows, a
// mark on the quiet ones) and the new-connections view (pairs seen in a
// window but never in the baseline before it), each linking to its flows.

import type { Host, NewPairs, NewPair } from "./api";
import { h } from "./dom";
import * as fmt from "./format";

export type Drill = (values: Record<string, string>, from?: string) => void;

export class HostsView {
  private body: HTMLTableSectionElement;

  constructor(
    private root: HTMLElement,
    private drill: Drill,
  ) {
    this.body = root.querySelector("tbody")!;
  }

  set(hosts: Host[]) {
    const now = new Date();
    this.body.replaceChildren(
      ...hosts.map((x) =>
        h(
          "tr",
          { "data-testid": "host", "data-host-id": x.host_id, "data-flows": x.flows, "data-quiet": String(x.quiet), class: x.quiet ? "quiet" : "" },
          h(
            "td",
            {},
            h("a", { href: "#", class: "who", title: `only flows reported by ${x.host_name || x.host_id}`, onclick: this.pick(x.host_id) }, x.host_name || x.host_id),
            h("small", {}, x.host_id),
          ),
          h("td", {}, x.quiet ? h("span", { class: "badge quiet-badge", title: "nothing reported lately" }, "quiet") : h("span", { class: "badge live-badge" }, "reporting")),
          h("td", { class: "time", title: `${fmt.timeMs(x.last_report)} ${fmt.zoneLabel()}` }, fmt.time(x.last_report, now), h("small", {}, fmt.ago(x.last_report, now))),
          h("td", {}, x.networks.join(", ") || "–"),
          h("td", { class: "num" }, fmt.eventRate(x.events_per_second), h("small", {}, `${fmt.count(x.events)} events`)),
          h("td", { class: "num", "data-testid": "host-flows" }, fmt.count(x.flows), h("small", {}, `${fmt.count(x.active)} open`)),
          h("td", { class: "num" }, fmt.bytes(x.bytes)),
          h("td", { class: "num" + (x.rejected ? " bad" : "") }, fmt.count(x.rejected)),
          agentsCell(x, now),
        ),
      ),
    );
    this.root.dataset.count = String(hosts.length);
    (this.root.querySelector(".empty") as HTMLElement).hidden = hosts.length > 0;
  }

  private pick(id: string): EventListener {
    return (e) => {
      e.preventDefault();
      this.drill({ node_id: id });
    };
  }
}

// agentsCell shows what a host runs: each wire generation (v1.4: a
// netclient of the older numbering) with its agent's product, the full
// user-agent and when it was last seen on hover.
function agentsCell(x: Host, now: Date): HTMLElement {
  const list = x.agents ?? [];
  return h(
    "td",
    { class: "agents", "data-testid": "host-agents", "data-generations": list.map((a) => a.generation).join(",") },
    ...(list.length
      ? list.map((a) =>
          h(
            "div",
            { title: `${a.agent || "no user-agent"}: wire generation ${a.generation}, last seen ${fmt.timeMs(a.last_seen)} ${fmt.zoneLabel()} (${fmt.ago(a.last_seen, now)})` },
            h("span", { class: `badge gen${a.generation === "v1.4" ? " old" : ""}` }, a.generation),
            " ",
            a.agent.split(" ")[0] || "–",
          ),
        )
      : ["–"]),
  );
}

export class NewPairsView {
  private body: HTMLTableSectionElement;

  constructor(
    private root: HTMLElement,
    private drill: Drill,
  ) {
    this.body = root.querySelector("tbody")!;
  }

  set(r: NewPairs) {
    const now = new Date();
    this.root.querySelector<HTMLElement>("[data-testid=new-range]")!.textContent = r.from
      ? `first seen since ${fmt.time(r.from, now)}, silent from ${fmt.time(r.baseline_from, now)} (${fmt.zoneLabel()})`
      : "";
    this.body.replaceChildren(
      ...r.pairs.map((p, i) => {
        const src = fmt.endpoint(p.src.type, p.src.id, p.src.name, p.src.ip);
        const dst = fmt.endpoint(p.dst.type, p.dst.id, p.dst.name, p.dst.ip);
        const proto = fmt.protocol(p.protocol);
        return h(
          "tr",
          { "data-testid": "new-pair", "data-pair": `${src}>${dst}:${p.dst_port}/${proto}`, "data-flows": p.flows },
          h("td", { class: "num muted" }, i + 1),
          h("td", {}, h("span", { class: `who t-${p.src.type}` }, src), h("small", {}, p.src.ip)),
          h("td", { class: "arrow" }, "⇢"),
          h("td", {}, h("span", { class: `who t-${p.dst.type}` }, dst), h("small", {}, p.dst.ip)),
          h("td", {}, h("span", { class: "chip" }, proto), p.dst_port ? ` ${p.dst_port}` : ""),
          h("td", { class: "time", title: fmt.timeMs(p.first) }, fmt.time(p.first, now), h("small", {}, fmt.ago(p.first, now))),
          h("td", { class: "num" }, fmt.count(p.flows)),
          h("td", { class: "num" }, fmt.bytes(p.bytes)),
          h("td", {}, h("a", { href: "#", class: "go", "data-testid": "new-pair-flows", onclick: this.pick(p, r.from) }, "flows →")),
        );
      }),
    );
    this.root.dataset.count = String(r.pairs.length);
    (this.root.querySelector(".empty") as HTMLElement).hidden = r.pairs.length > 0;
  }

  // pick filters the flows view on the pair: participants by id, unnamed
  // ones (externals) by address, and the port and protocol.
  private pick(p: NewPair, from: string): EventListener {
    return (e) => {
      e.preventDefault();
      const v: Record<string, string> = { protocol: fmt.protocol(p.protocol) };
      if (p.dst_port) v.port = String(p.dst_port);
      if (p.src.id) v.src_entity_id = p.src.id;
      if (p.dst.id) v.dst_entity_id = p.dst.id;
      if (!p.dst.id) v.ip = p.dst.ip;
      else if (!p.src.id) v.ip = p.src.ip;
      this.drill(v, from);
    };
  }
}

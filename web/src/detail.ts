// The flow detail pane: every field of a flow, times to the millisecond,
// its timeline, its rates, and every host's observation of the same
// connection (the source host's egress and the destination host's ingress).

import * as api from "./api";
import type { FlowRow } from "./api";
import { h } from "./dom";
import * as fmt from "./format";
import { network, type Pick } from "./table";

export class FlowDetail {
  private body: HTMLElement;
  private ctl = new AbortController();
  current: FlowRow | null = null;

  constructor(
    private root: HTMLElement,
    private onPick: Pick = () => {},
  ) {
    this.body = root.querySelector<HTMLElement>(".detail-body")!;
    root.querySelector("[data-testid=detail-close]")!.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (e) => e.key === "Escape" && this.close());
  }

  close() {
    this.ctl.abort();
    this.root.hidden = true;
    this.current = null;
    document.querySelector("tr.selected")?.classList.remove("selected");
  }

  // show opens the pane on r; update refreshes it in place when a live
  // event of the same flow arrives (its DESTROY).
  show(r: FlowRow) {
    this.ctl.abort();
    this.ctl = new AbortController();
    this.current = r;
    this.root.hidden = false;
    this.root.dataset.flowId = r.flow_id;
    this.render(r, null);
    const signal = this.ctl.signal;
    api
      .observations(r, signal)
      .then((rows) => !signal.aborted && this.render(r, rows))
      .catch((e) => !signal.aborted && this.render(r, e instanceof Error ? e.message : String(e)));
  }

  update(r: FlowRow) {
    if (this.current?.flow_id === r.flow_id) this.show(r);
  }

  rerender() {
    if (this.current) this.show(this.current);
  }

  private render(r: FlowRow, obs: FlowRow[] | string | null) {
    const start = new Date(r.start_ts);
    const ended = !r.active && fmt.ended(r.end_ts);
    const end = ended ? new Date(r.end_ts) : null;
    const ms = end ? end.getTime() - start.getTime() : Date.now() - start.getTime();
    const secs = ms / 1000;
    const bytes = r.bytes_sent + r.bytes_recv;
    const packets = r.packets_sent + r.packets_recv;
    const side = (what: string, type: string, id: string, name: string, ip: string, port: number, net: Node | null) =>
      h(
        "div",
        { class: "ep" },
        h("small", {}, what),
        h("b", { class: `who t-${type}` }, fmt.endpoint(type, id, name, ip)),
        h("div", { class: "mono" }, ip + (port ? `:${port}` : "")),
        h("div", { class: "muted" }, `${type}${id ? ` · id ${id}` : ""}`),
        net,
      );
    const row = (k: string, v: string | Node, testid = "") => [h("dt", {}, k), h("dd", testid ? { "data-testid": testid } : {}, v)];
    const fields: Array<[string, string]> = Object.entries(r).map(([k, v]) => [k, String(v)]);
    this.body.replaceChildren(
      h(
        "div",
        { class: "pair" },
        side("source", r.src_type, r.src_entity_id, r.src_entity_name, r.src_ip, r.src_port, network(r.src_asn, r.src_as_name, r.src_country, this.onPick)),
        h("div", { class: "arrow", title: r.direction }, r.direction === "ingress" ? "⇠" : "⇢"),
        side("destination", r.dst_type, r.dst_entity_id, r.dst_entity_name, r.dst_ip, r.dst_port, network(r.dst_asn, r.dst_as_name, r.dst_country, this.onPick)),
      ),
      h(
        "div",
        { class: "timeline", title: "start → end" },
        h("span", { class: "t0" }, fmt.timeMs(start)),
        h("span", { class: `bar${ended ? "" : " open"}` }),
        h("span", { class: "t1" }, end ? fmt.timeMs(end) : "open"),
      ),
      h(
        "dl",
        {},
        ...row("start", `${fmt.timeMs(start)} ${fmt.zoneLabel(start)}`, "detail-start"),
        ...row("end", end ? `${fmt.timeMs(end)} ${fmt.zoneLabel(end)}` : "still open", "detail-end"),
        ...row("duration", `${fmt.duration(ms)}${ended ? "" : " so far"} (${ms} ms)`, "detail-duration"),
        ...row("protocol", `${fmt.protocol(r.protocol)} (${r.protocol})${r.icmp_type || r.icmp_code ? `, ICMP type ${r.icmp_type} code ${r.icmp_code}` : ""}`),
        ...row("sent", `${fmt.bytes(r.bytes_sent)} (${r.bytes_sent} B), ${r.packets_sent} packets`),
        ...row("received", `${fmt.bytes(r.bytes_recv)} (${r.bytes_recv} B), ${r.packets_recv} packets`),
        ...row("rate", ended && secs > 0 ? `${fmt.bitRate(bytes, secs)}, ${fmt.packetRate(packets, secs)} on average` : "–"),
        ...row("reported by", `${r.host_name || r.host_id} (${r.host_id}) in ${r.network_id}, ${r.direction}`),
      ),
      h("h3", {}, "Observations of this connection"),
      this.observations(r, obs),
      h("details", { class: "raw" }, h("summary", {}, "All fields"), h("dl", { "data-testid": "detail-fields" }, ...fields.flatMap(([k, v]) => row(k, v)))),
    );
  }

  private observations(r: FlowRow, obs: FlowRow[] | string | null): Node {
    if (obs === null) return h("p", { class: "muted" }, "Looking for the other host's report…");
    if (typeof obs === "string") return h("p", { class: "muted" }, `Could not list them: ${obs}`);
    const list = obs.some((o) => o.flow_id === r.flow_id && o.host_id === r.host_id) ? obs : [r, ...obs];
    return h(
      "table",
      { class: "obs", "data-testid": "detail-observations", "data-count": list.length },
      h("thead", {}, h("tr", {}, h("th", {}, "host"), h("th", {}, "direction"), h("th", {}, "start"), h("th", { class: "num" }, "sent"), h("th", { class: "num" }, "received"))),
      h(
        "tbody",
        {},
        ...list.map((o) =>
          h(
            "tr",
            { class: o.flow_id === r.flow_id ? "this" : "" },
            h("td", {}, o.host_name || o.host_id),
            h("td", {}, o.direction),
            h("td", { class: "mono" }, fmt.timeMs(o.start_ts)),
            h("td", { class: "num" }, fmt.bytes(o.bytes_sent)),
            h("td", { class: "num" }, fmt.bytes(o.bytes_recv)),
          ),
        ),
      ),
    );
  }
}

// The flows table: newest first or by bytes or duration (sorted by the
// server: a header reloads in its order, "Load more" continues it by
// cursor), live upserts, a click on a row opens its detail.

import type { FlowRow } from "./api";
import { h } from "./dom";
import * as fmt from "./format";
import { portProtocols } from "./domain.gen";
import type { SortKey } from "./filters";

// The table holds at most this many rows; live flows push the oldest out.
const maxRows = 5000;

export type Pick = (field: "participant" | "ip" | "src_ip" | "dst_ip" | "port" | "protocol" | "asn" | "country", value: string) => void;

interface Shown {
  row: FlowRow;
  tr: HTMLTableRowElement;
}

// sortValue is a row's place in the server's order (flowlog.Sort.SortValue):
// an open flow has lasted until now, longer than any ended one, the older
// the longer (2^52 keeps the numbers exact in a double).
const openBase = 2 ** 52;
const maxTime = 253402300799999;
const sortValue: Record<SortKey, (r: FlowRow) => number> = {
  start: () => 0,
  duration: (r) => (fmt.ended(r.end_ts) ? Math.max(new Date(r.end_ts).getTime() - startOf(r), 0) : openBase + (maxTime - startOf(r))),
  bytes: (r) => r.bytes_sent + r.bytes_recv,
};

const orderWords: Record<SortKey, [string, string]> = {
  start: ["newest", "oldest"],
  bytes: ["largest", "smallest"],
  duration: ["longest", "shortest"],
};

export class FlowsTable {
  private body: HTMLTableSectionElement;
  private shown = new Map<string, Shown>();
  private more: HTMLButtonElement;
  private countEl: HTMLElement;
  private emptyEl: HTMLElement;
  next = "";
  private trimmed = false;
  sortKey: SortKey = "start";
  sortDesc = true;

  constructor(
    private root: HTMLElement,
    private onMore: () => void,
    private onPick: Pick,
    private onOpen: (r: FlowRow) => void,
    onSort: (key: SortKey) => void,
  ) {
    this.body = root.querySelector("tbody")!;
    this.more = root.querySelector<HTMLButtonElement>("[data-testid=load-more]")!;
    this.countEl = root.querySelector<HTMLElement>("[data-testid=flows-count]")!;
    this.emptyEl = root.querySelector<HTMLElement>(".empty")!;
    this.more.addEventListener("click", () => this.onMore());
    for (const th of root.querySelectorAll<HTMLElement>("th[data-sort]")) {
      th.addEventListener("click", () => onSort(th.dataset.sort as SortKey));
    }
    this.body.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      if (t.closest("a")) return; // a filter link
      const tr = t.closest<HTMLElement>("tr[data-flow-id]");
      const s = tr && this.shown.get(tr.dataset.flowId ?? "");
      if (s) this.select(s);
    });
  }

  private selected = "";
  private select(s: Shown) {
    this.body.querySelector("tr.selected")?.classList.remove("selected");
    s.tr.classList.add("selected");
    this.selected = s.row.flow_id;
    this.onOpen(s.row);
  }

  // setSort shows the order the server lists the rows in (the rows come
  // in it; live rows are placed by it).
  setSort(key: SortKey, asc: boolean) {
    this.sortKey = key;
    this.sortDesc = !asc;
    for (const th of this.root.querySelectorAll<HTMLElement>("th[data-sort]")) {
      const on = th.dataset.sort === key;
      th.dataset.dir = on ? (asc ? "asc" : "desc") : "";
      th.setAttribute("aria-sort", on ? (asc ? "ascending" : "descending") : "none");
    }
  }

  // compare orders rows as the server does: by the sort value, then start,
  // then flow id, all in the sort's direction.
  private compare(a: FlowRow, b: FlowRow): number {
    const f = sortValue[this.sortKey];
    const d = f(a) - f(b) || startOf(a) - startOf(b) || (a.flow_id < b.flow_id ? -1 : a.flow_id > b.flow_id ? 1 : 0);
    return this.sortDesc ? -d : d;
  }

  reset(rows: FlowRow[], next: string) {
    this.shown.clear();
    this.trimmed = false;
    this.body.replaceChildren();
    this.append(rows, next);
  }

  append(rows: FlowRow[], next: string) {
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      if (this.shown.has(r.flow_id)) continue; // a flow that moved pages while we read
      const tr = this.render(r);
      this.shown.set(r.flow_id, { row: r, tr });
      frag.append(tr);
    }
    this.body.append(frag);
    this.next = next;
    this.update();
  }

  // upsert shows a row from the live tail: a known flow is updated in place
  // (its DESTROY after its START; it keeps its place, even when its new
  // bytes would sort it elsewhere, so that nothing jumps); a new one is
  // inserted where the listing's order puts it (newest start first: on
  // top), or left to "Load more" when it belongs to a page not loaded yet.
  // Shown rows flash.
  upsert(r: FlowRow): "new" | "updated" | "" {
    const old = this.shown.get(r.flow_id);
    if (old && versionOf(old.row) > versionOf(r)) return "";
    const tr = this.render(r);
    tr.classList.add("live");
    if (old) {
      // The same row, its cells replaced: nothing around it moves.
      old.tr.replaceChildren(...tr.childNodes);
      for (const a of ["data-active", "data-bytes", "class"]) old.tr.setAttribute(a, tr.getAttribute(a) ?? "");
      old.tr.classList.add("live");
      if (old.row.flow_id === this.selected) old.tr.classList.add("selected");
      this.shown.set(r.flow_id, { row: r, tr: old.tr });
      this.update();
      return "updated";
    } else {
      let before: Element | null = null;
      for (const el of this.body.children) {
        const s = this.shown.get((el as HTMLElement).dataset.flowId ?? "");
        if (s && this.compare(s.row, r) >= 0) {
          before = el;
          break;
        }
      }
      if (!before && this.next) return ""; // older than everything loaded
      this.keepScroll(() => this.body.insertBefore(tr, before));
    }
    this.shown.set(r.flow_id, { row: r, tr });
    while (this.shown.size > maxRows) this.trim();
    this.update();
    if (!this.shown.has(r.flow_id)) return "";
    return old ? "updated" : "new";
  }

  // keepScroll keeps what the reader looks at in place when a row is
  // inserted above it (the table scrolls within its panel).
  private keepScroll(insert: () => void) {
    const wrap = this.root.querySelector<HTMLElement>(".table-wrap")!;
    const before = wrap.scrollHeight;
    insert();
    if (wrap.scrollTop > 0) wrap.scrollTop += wrap.scrollHeight - before;
  }

  rowOf(id: string): FlowRow | undefined {
    return this.shown.get(id)?.row;
  }

  // trim drops the bottom row to keep a long-open page small; the listing
  // can then no longer be continued where it stopped.
  private trim() {
    const last = this.body.lastElementChild as HTMLElement | null;
    if (!last) return;
    this.shown.delete(last.dataset.flowId ?? "");
    last.remove();
    this.next = "";
    this.trimmed = true;
  }

  private update() {
    const n = this.shown.size;
    this.root.dataset.rows = String(n);
    this.countEl.textContent =
      `${n} flow${n === 1 ? "" : "s"} shown` +
      (this.sortKey !== "start" || !this.sortDesc ? `, ${orderWords[this.sortKey][this.sortDesc ? 0 : 1]} first` : "") +
      (this.next ? ", more available" : this.trimmed ? `, older ones trimmed (at most ${maxRows}): Apply to reload` : "");
    this.more.hidden = !this.next;
    this.emptyEl.hidden = n > 0;
  }

  setLoadingMore(on: boolean) {
    this.more.disabled = on;
    this.more.textContent = on ? "Loading…" : "Load more";
  }

  private render(r: FlowRow): HTMLTableRowElement {
    const now = new Date();
    const total = r.bytes_sent + r.bytes_recv;
    const end = fmt.ended(r.end_ts);
    const dur = end ? fmt.duration(new Date(r.end_ts).getTime() - new Date(r.start_ts).getTime()) : "";
    const proto = fmt.protocol(r.protocol);
    return h(
      "tr",
      {
        "data-flow-id": r.flow_id,
        "data-start": r.start_ts,
        "data-protocol": r.protocol,
        "data-bytes": total,
        "data-active": r.active ? "true" : "false",
        class: r.active ? "active" : "",
      },
      h("td", { class: "time", title: `${fmt.timeMs(r.start_ts)} ${fmt.zoneLabel()} (${fmt.ago(r.start_ts, now)})` }, fmt.time(r.start_ts, now)),
      h("td", { class: "num" }, r.active ? h("span", { class: "badge live-badge" }, "active") : dur),
      h("td", {}, h("a", { href: "#", class: "chip proto", title: `only ${proto}`, onclick: this.pick("protocol", proto.toLowerCase()) }, proto)),
      this.endpoint("src", r.src_type, r.src_entity_id, r.src_entity_name, r.src_ip, r.src_port, r.protocol, network(r.src_asn, r.src_as_name, r.src_country, this.onPick)),
      h("td", { class: "arrow", title: r.direction }, r.direction === "ingress" ? "⇠" : "⇢"),
      this.endpoint("dst", r.dst_type, r.dst_entity_id, r.dst_entity_name, r.dst_ip, r.dst_port, r.protocol, network(r.dst_asn, r.dst_as_name, r.dst_country, this.onPick)),
      h("td", { class: "host", title: `${r.host_id} in ${r.network_id}` }, r.host_name || r.host_id, h("small", {}, r.network_id)),
      h("td", { class: "num", title: `${r.bytes_sent} B sent` }, fmt.bytes(r.bytes_sent)),
      h("td", { class: "num", title: `${r.bytes_recv} B received` }, fmt.bytes(r.bytes_recv)),
      h("td", { class: "num", title: `${r.packets_sent} sent / ${r.packets_recv} received` }, fmt.count(r.packets_sent + r.packets_recv)),
    );
  }

  private endpoint(side: "src" | "dst", type: string, id: string, name: string, ip: string, port: number, proto: number, net: Node | null) {
    const label = fmt.endpoint(type, id, name, ip);
    const showPort = portProtocols.includes(proto);
    // An unnamed external endpoint is its address: the link filters by it.
    const byIP = !id && !name;
    return h(
      "td",
      { class: "endpoint" },
      h(
        "a",
        {
          href: "#",
          class: `who t-${type}`,
          title: byIP ? `${type} ${ip}: only flows of ${ip}` : `${type} ${id}: only flows of ${label}`,
          onclick: byIP ? this.pick("ip", ip) : this.pick("participant", id || name),
        },
        label,
      ),
      h("small", {}, h("a", { href: "#", class: "ip", title: `only flows of ${ip}`, onclick: this.pick("ip", ip) }, ip), showPort && port ? `:${port}` : ""),
      net,
      type === "external" ? this.prefix(side, ip) : null,
    );
  }

  // prefix links an external endpoint's network (its /24 or /48) to the
  // filter on that side's address.
  private prefix(side: "src" | "dst", ip: string): HTMLElement | null {
    const p = fmt.prefixOf(ip);
    if (!p) return null;
    const title = `only flows whose ${side === "src" ? "source" : "destination"} is in ${p}`;
    return h("small", { class: "prefix" }, "in ", h("a", { href: "#", class: "prefix", "data-testid": "prefix", title, onclick: this.pick(`${side}_ip`, p) }, p));
  }

  private pick(field: Parameters<Pick>[0], value: string): EventListener {
    return (e) => {
      e.preventDefault();
      if (value) this.onPick(field, value);
    };
  }
}

// network shows an external endpoint's AS and country (named by the
// collector), each a link that filters by it; null when unknown.
export function network(asn: number | undefined, asName: string | undefined, country: string | undefined, onPick: Pick): HTMLElement | null {
  if (!asn && !country) return null;
  const link = (field: "asn" | "country", value: string, text: string, title: string) =>
    h("a", { href: "#", class: field, title, onclick: (e: Event) => (e.preventDefault(), onPick(field, value)) }, text);
  return h(
    "small",
    { class: "net", "data-testid": "network" },
    asn ? link("asn", String(asn), `AS${asn}${asName ? ` ${asName}` : ""}`, `only flows of AS${asn} (AS data: RouteViews, DB-IP, NRO; CC BY 4.0)`) : null,
    asn && country ? " · " : null,
    country ? link("country", country, country, `only flows of ${country}`) : null,
  );
}

function startOf(r: FlowRow): number {
  return new Date(r.start_ts).getTime() || 0;
}

function versionOf(r: FlowRow): number {
  const t = new Date(r.version).getTime();
  return Number.isFinite(t) ? t : 0;
}

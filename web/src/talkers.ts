// Top talkers: participants (or addresses, external networks by AS, country
// or prefix) by bytes, packets or flows, each
// counted for every flow it sent or received, with the average rate over
// the window beside the total. A refresh updates the rows it already shows
// in place (numbers and bars); rows move only when the ranking changes.

import type { Talker } from "./api";
import { h } from "./dom";
import * as fmt from "./format";

interface Row {
  li: HTMLLIElement;
  bar: HTMLElement;
  val: HTMLElement;
  rate: HTMLElement;
}

export class TopTalkers {
  private list: HTMLOListElement;
  private rows = new Map<string, Row>();
  private mode = "";

  constructor(
    private root: HTMLElement,
    private onPick: (by: string, value: string) => void,
  ) {
    this.list = root.querySelector("ol")!;
  }

  // seconds is the window's length, for the rates.
  set(rows: Talker[], by: string, metric: string, seconds: number) {
    const value = (t: Talker) => (metric === "packets" ? t.packets : metric === "flows" ? t.flows : t.bytes);
    const show = (n: number) => (metric === "bytes" ? fmt.bytes(n) : fmt.count(n));
    const rate = (t: Talker) =>
      metric === "packets" ? fmt.packetRate(t.packets, seconds) : metric === "flows" ? `${fmt.bytes(t.bytes)}` : fmt.bitRate(t.bytes, seconds);
    const max = Math.max(1, ...rows.map(value));
    if (this.mode !== `${by}|${metric}`) {
      this.mode = `${by}|${metric}`;
      this.rows.clear();
      this.list.replaceChildren();
    }
    const keep = new Set<string>();
    const ordered: HTMLLIElement[] = [];
    for (const t of rows) {
      const key = keyOf(t, by);
      keep.add(key);
      const label = labelOf(t, by);
      let r = this.rows.get(key);
      if (!r) {
        r = this.render(t, by, label);
        this.rows.set(key, r);
      }
      r.li.dataset.bytes = String(t.bytes);
      r.li.dataset.flows = String(t.flows);
      r.li.dataset.packets = String(t.packets);
      r.li.title = `${label}${t.type ? ` (${t.type})` : ""}: ${fmt.bytes(t.bytes)}, ${fmt.count(t.packets)} packets, ${t.flows} flows; ${fmt.bitRate(t.bytes, seconds)}, ${fmt.packetRate(t.packets, seconds)} on average`;
      r.bar.style.width = `${((100 * value(t)) / max).toFixed(1)}%`;
      setText(r.val, show(value(t)));
      setText(r.rate, rate(t));
      ordered.push(r.li);
    }
    for (const [k, r] of this.rows) {
      if (!keep.has(k)) {
        r.li.remove();
        this.rows.delete(k);
      }
    }
    // Move only what is out of place (a moved node restarts nothing else).
    ordered.forEach((li, i) => {
      if (this.list.children[i] !== li) this.list.insertBefore(li, this.list.children[i] ?? null);
    });
    this.root.dataset.count = String(rows.length);
    (this.root.querySelector(".empty") as HTMLElement).hidden = rows.length > 0;
  }

  private render(t: Talker, by: string, label: string): Row {
    // Unnamed externals are one row by participant: its link shows them by
    // address instead (each address then filters).
    const pickValue = by === "participant" ? t.id || t.name || (t.type === "external" ? "external" : "") : keyOf(t, by);
    const pickBy = by === "participant" && !t.id && !t.name && t.type === "external" ? "external" : by;
    const bar = h("span", { class: "bar" });
    const val = h("span", { class: "val" });
    const rate = h("span", { class: "rate" });
    const li = h(
      "li",
      { "data-testid": "talker", "data-key": keyOf(t, by), "data-name": label },
      bar,
      h(
        "a",
        {
          href: "#",
          class: `who t-${t.type || "ip"}`,
          onclick: (e: Event) => {
            e.preventDefault();
            if (pickValue) this.onPick(by, pickValue);
          },
        },
        pickBy === "external" ? "external addresses" : label,
      ),
      t.type && by !== "ip" ? h("small", {}, pickBy === "external" ? "by address →" : t.type) : null,
      val,
      rate,
    );
    return { li, bar, val, rate };
  }
}

// keyOf is a talker's identity in its grouping (and the filter value of
// an address, an AS, a country).
function keyOf(t: Talker, by: string): string {
  if (by === "ip") return t.ip;
  if (by.startsWith("prefix")) return t.prefix ?? "";
  if (by === "asn") return String(t.asn ?? "");
  if (by === "country") return t.country ?? "";
  return fmt.entityKey(t.type, t.id, t.name);
}

function labelOf(t: Talker, by: string): string {
  if (by === "ip") return t.ip;
  if (by.startsWith("prefix")) return t.prefix ?? "";
  if (by === "asn") return `AS${t.asn}${t.as_name ? ` ${t.as_name}` : ""}`;
  if (by === "country") return t.country ?? "";
  return fmt.entity(t.type, t.id, t.name);
}

// setText writes only a changed text (no needless layout).
export function setText(el: Element, text: string) {
  if (el.textContent !== text) el.textContent = text;
}

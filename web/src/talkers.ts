// Top talkers: participants (or addresses) by bytes, packets or flows, each
// counted for every flow it sent or received.

import type { Talker } from "./api";
import { h } from "./dom";
import * as fmt from "./format";

export class TopTalkers {
  private list: HTMLOListElement;

  constructor(
    private root: HTMLElement,
    private onPick: (by: string, value: string) => void,
  ) {
    this.list = root.querySelector("ol")!;
  }

  set(rows: Talker[], by: string, metric: string) {
    const value = (t: Talker) => (metric === "packets" ? t.packets : metric === "flows" ? t.flows : t.bytes);
    const show = (n: number) => (metric === "bytes" ? fmt.bytes(n) : fmt.count(n));
    const max = Math.max(1, ...rows.map(value));
    this.list.replaceChildren(
      ...rows.map((t) => {
        const label = by === "ip" ? t.ip : fmt.entity(t.type, t.id, t.name);
        const pickValue = by === "ip" ? t.ip : t.id || t.name;
        const bar = h("span", { class: "bar" });
        bar.style.width = `${((100 * value(t)) / max).toFixed(1)}%`;
        return h(
          "li",
          {
            "data-testid": "talker",
            "data-key": by === "ip" ? t.ip : fmt.entityKey(t.type, t.id, t.name),
            "data-name": label,
            "data-bytes": t.bytes,
            "data-flows": t.flows,
            title: `${label}${t.type ? ` (${t.type})` : ""}: ${fmt.bytes(t.bytes)}, ${t.packets} packets, ${t.flows} flows`,
          },
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
            label,
          ),
          t.type && by !== "ip" ? h("small", {}, t.type) : null,
          h("span", { class: "val" }, show(value(t))),
        );
      }),
    );
    this.root.dataset.count = String(rows.length);
    (this.root.querySelector(".empty") as HTMLElement).hidden = rows.length > 0;
  }
}

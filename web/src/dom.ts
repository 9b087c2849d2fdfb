// A few lines of DOM building instead of a framework.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (k === "class") el.className = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el as T;
}

// panelState marks a panel for people (a spinner, an error line) and for the
// browser test, which waits for data-state="ready" with the expected query.
export function panelState(el: HTMLElement, state: "loading" | "ready" | "error", query: string, err = "") {
  el.dataset.state = state;
  el.dataset.query = query;
  const msg = el.querySelector<HTMLElement>(".panel-error");
  if (msg) {
    msg.textContent = err;
    msg.hidden = !err;
  }
}

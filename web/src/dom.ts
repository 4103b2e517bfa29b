// A tiny element builder: the console is small enough to need no framework.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | number | EventListener | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

export function replace(target: Element, ...children: Child[]): void {
  target.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

let ids = 0;
/** A labelled input: returns [label+input wrapper, input]. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): [HTMLElement, typeof input] {
  const id = input.id || `f${++ids}`;
  input.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return [h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl), input];
}

export function when(date: { seconds: bigint } | undefined): string {
  if (!date) return "—";
  return new Date(Number(date.seconds) * 1000).toLocaleString();
}

/** A status line read out by screen readers. */
export function status(kind: "info" | "error" | "ok", text: string): HTMLElement {
  return h("p", { class: `status ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

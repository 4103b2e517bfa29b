// A table of one page of a paged list (opaque page tokens from the API), with Newer/Older.

import { h, replace } from "./dom";

export interface Page {
  rows: HTMLElement[];
  /** The next (older) page's token; empty on the last page. */
  next: string;
}

export interface Paged {
  /** Back to the first (newest) page, fetched again. */
  reload(): Promise<void>;
}

export function pagedTable(
  box: HTMLElement,
  fetchPage: (token: string) => Promise<Page>,
  opts: { caption: string; headers: string[]; empty: string; fail: (err: unknown) => void },
): Paged {
  const tokens = [""]; // tokens of the pages seen, newest first
  const show = async (page: number): Promise<void> => {
    let r: Page;
    try {
      r = await fetchPage(tokens[page]);
    } catch (err) {
      replace(box);
      return opts.fail(err);
    }
    if (r.next) tokens[page + 1] = r.next;
    const newer = h("button", { type: "button", disabled: page === 0 }, "Newer");
    newer.addEventListener("click", () => show(page - 1));
    const older = h("button", { type: "button", disabled: !r.next }, "Older");
    older.addEventListener("click", () => show(page + 1));
    replace(
      box,
      r.rows.length
        ? h(
            "table",
            {},
            h("caption", {}, `${opts.caption}, page ${page + 1}`),
            h("thead", {}, h("tr", {}, ...opts.headers.map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, ...r.rows),
          )
        : h("p", {}, opts.empty),
      h("nav", { "aria-label": `${opts.caption} pages` }, newer, older),
    );
  };
  return {
    reload: () => {
      tokens.length = 1;
      return show(0);
    },
  };
}

/**
 * The interactive comparison view, built with DOM calls only: every string from the
 * notebook goes in through textContent or setAttribute, never as markup, and nothing in
 * it is evaluated. All state (opened path, filter, toggles, sort) lives here and every
 * change redraws from the payload through model.display(), as the kernel's widget does.
 */

import {
  Display,
  Line,
  Payload,
  RowLine,
  Segment,
  Sort,
  SortColumn,
  State,
  display,
  fmt,
  initialState,
  navigable,
  neighbours,
  sortLines,
  topLabel,
  twoSided
} from './model';
import { PayloadError } from './payload';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(cls: string, text: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', `jp-mod-styled ${cls}`, text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

const sameColumn = (a: SortColumn, b: SortColumn): boolean =>
  a.kind === b.kind && (a.kind !== 'value' || (b.kind === 'value' && a.name === b.name));

export class CompareView {
  readonly node: HTMLDivElement;
  private state: State = initialState();
  private sort: Sort | null = null;
  private readonly filter: HTMLInputElement;
  private readonly toggle: HTMLButtonElement | null = null;
  private readonly showAll: HTMLButtonElement;
  private readonly crumbs: HTMLElement;
  private readonly body: HTMLDivElement;

  constructor(private readonly payload: Payload) {
    this.node = el('div', 'rfk-compare');
    const controls = el('div', 'rfk-controls');
    this.filter = el('input', 'jp-mod-styled rfk-filter');
    this.filter.type = 'search';
    this.filter.placeholder = 'filter rows (substring)';
    this.filter.setAttribute('aria-label', 'Filter rows');
    this.filter.addEventListener('input', () => {
      this.state = { ...this.state, query: this.filter.value };
      this.redraw();
    });
    controls.append(this.filter);
    // A one-sided view (changes) has no "same" rows: nothing for the toggle to hide.
    if (twoSided(payload)) {
      this.toggle = button('rfk-diff-toggle', 'differences only', () => {
        this.state = { ...this.state, differencesOnly: !this.state.differencesOnly };
        this.redraw();
      });
      this.toggle.title = 'hide rows that are the same on both sides';
      this.toggle.setAttribute('aria-pressed', 'false');
      controls.append(this.toggle);
    }
    this.showAll = button('rfk-show-all', 'show all', () => {
      this.state = { ...this.state, expanded: !this.state.expanded };
      this.redraw();
    });
    controls.append(this.showAll);
    this.crumbs = el('nav', 'rfk-crumbs');
    this.crumbs.setAttribute('aria-label', 'Opened directory');
    this.body = el('div', 'rfk-body');
    this.node.append(controls);
    if (navigable(payload)) {
      this.node.append(this.crumbs);
    }
    this.node.append(this.body);
    this.redraw();
  }

  private open(name: string): void {
    this.state = { ...this.state, path: [...this.state.path, name], expanded: false };
    this.redraw();
  }

  private goUp(depth: number): void {
    this.state = { ...this.state, path: this.state.path.slice(0, depth), expanded: false };
    this.redraw();
  }

  private sortBy(column: SortColumn): void {
    if (this.sort && sameColumn(this.sort.column, column)) {
      this.sort = { column, descending: !this.sort.descending };
    } else {
      this.sort = { column, descending: false };
    }
    this.redraw();
  }

  /** The display, sorted when a column is: runs are unfolded first (sorting orders rows). */
  private view(): Display {
    const d = display(this.payload, this.state);
    if (!this.sort) {
      return d;
    }
    const open = d.lines.some(ln => ln.kind === 'group')
      ? display(this.payload, {
          ...this.state,
          expanded: true,
          differencesOnly: this.state.differencesOnly || d.collapsed
        })
      : d;
    return { ...d, lines: sortLines(open.lines, this.sort) };
  }

  private redraw(): void {
    if (navigable(this.payload)) {
      this.drawCrumbs();
    }
    if (this.toggle) {
      this.toggle.setAttribute('aria-pressed', String(this.state.differencesOnly));
    }
    const d = this.view();
    this.showAll.hidden = !d.footer;
    this.showAll.textContent = d.footer ? d.footer.action : '';
    this.showAll.setAttribute('aria-pressed', String(this.state.expanded));

    const heading = el('div', 'rfk-heading');
    heading.append(el('div', 'rfk-title', d.title));
    if (d.headline) {
      heading.append(el('div', 'rfk-headline', d.headline));
    }
    heading.append(el('div', 'rfk-summary', `${d.summary}  ·  ${d.legend}`));
    const scroller = el('div', 'rfk-scroll');
    scroller.append(this.table(d));
    const parts: HTMLElement[] = [heading, scroller];
    if (d.footer && d.footer.text) {
      parts.push(el('div', 'rfk-footer', d.footer.text));
    }
    if (d.note) {
      parts.push(el('div', 'rfk-note rfk-truncated', d.note));
    }
    this.body.replaceChildren(...parts);
  }

  private drawCrumbs(): void {
    const names = [topLabel(this.payload), ...this.state.path];
    const parts: HTMLElement[] = names.map((name, depth) => {
      const b = button('rfk-crumb', depth === 0 ? name : `${name}/`, () => this.goUp(depth));
      b.disabled = depth === names.length - 1;
      return b;
    });
    // %show steps: step through the opened step's neighbours.
    const [before, after] = neighbours(this.payload, this.state.path);
    if (before) {
      const b = button('rfk-step rfk-step-prev', '◀ previous step', () => this.goTo(before));
      b.title = before;
      parts.push(b);
    }
    if (after) {
      const b = button('rfk-step rfk-step-next', 'next step ▶', () => this.goTo(after));
      b.title = after;
      parts.push(b);
    }
    this.crumbs.replaceChildren(...parts);
  }

  private goTo(key: string): void {
    this.state = { ...this.state, path: [key], expanded: false };
    this.redraw();
  }

  private table(d: Display): HTMLTableElement {
    const p = this.payload;
    const both = twoSided(p);
    const ncols = 3 + (both ? 1 : 0) + d.columns.length;
    const table = el('table', 'rfk-table');

    const head = el('tr');
    head.append(this.header('±', { kind: 'status' }, 'rfk-mark', 'sort by status (+, -, ~)'));
    head.append(this.header(fmt(d.key.label), { kind: 'key' }, 'rfk-key'));
    if (both) {
      head.append(el('th', 'rfk-side', 'side'));
    }
    for (const c of d.columns) {
      head.append(this.header(fmt(c.label), { kind: 'value', name: c.name }));
    }
    head.append(el('th', 'rfk-row-note', 'note'));
    table.createTHead().append(head);

    const tbody = table.createTBody();
    for (const ln of d.lines) {
      tbody.append(ln.kind === 'group' ? this.group(ln, ncols) : this.line(ln, both, d));
    }
    if (d.empty) {
      const tr = el('tr');
      const td = el('td', 'rfk-empty', d.empty);
      td.colSpan = ncols;
      tr.append(td);
      tbody.append(tr);
    }
    return table;
  }

  private header(
    label: string,
    column: SortColumn,
    cls?: string,
    title?: string
  ): HTMLTableCellElement {
    const th = el('th', cls);
    const b = el('button', 'rfk-sort', label);
    b.type = 'button';
    b.title = title ?? `sort by ${label}`;
    b.setAttribute('aria-label', b.title);
    if (this.sort && sameColumn(this.sort.column, column)) {
      th.setAttribute('aria-sort', this.sort.descending ? 'descending' : 'ascending');
      b.append(el('span', 'rfk-sort-mark', this.sort.descending ? ' ▼' : ' ▲'));
    }
    b.addEventListener('click', () => this.sortBy(column));
    th.append(b);
    return th;
  }

  private group(ln: Extract<Line, { kind: 'group' }>, ncols: number): HTMLTableRowElement {
    const tr = el('tr', `rfk-row rfk-group-row rfk-${ln.status}`);
    tr.dataset.status = ln.status;
    const key = el('td', 'rfk-key');
    key.append(
      button('rfk-unfold', ln.key, () => {
        this.state = { ...this.state, expanded: true };
        this.redraw();
      })
    );
    key.lastElementChild!.setAttribute('title', `show these ${ln.count} rows`);
    const text = el('td', 'rfk-group', ln.text);
    text.colSpan = ncols - 2;
    tr.append(el('td', 'rfk-mark', ln.mark), key, text);
    return tr;
  }

  private line(ln: RowLine, both: boolean, d: Display): HTMLTableRowElement {
    const row = ln.row;
    const tr = el('tr', `rfk-row rfk-${row.status}`);
    tr.dataset.status = row.status;
    tr.dataset.side = ln.side;
    if (ln.first) {
      const mark = el('td', 'rfk-mark', ln.mark);
      mark.rowSpan = ln.span;
      const key = el('td', 'rfk-key');
      key.rowSpan = ln.span;
      if (row.children) {
        const open = button('rfk-open', ln.key, () => this.open(fmt(row.key)));
        open.title = {
          layers: 'open this layer',
          steps: 'open this step: the mount table after it'
        }[this.payload.kind as string] ?? 'open this directory';
        key.append(open);
      } else {
        key.textContent = ln.key;
      }
      tr.append(mark, key);
    }
    if (both) {
      tr.append(el('td', 'rfk-side', ln.side));
    }
    d.columns.forEach((column, i) => {
      tr.append(this.value(ln.values[i], column.split));
    });
    if (ln.first) {
      const note = el('td', 'rfk-row-note');
      note.rowSpan = ln.span;
      if (ln.note) {
        note.append(el('span', 'rfk-wrap', ln.note));
      }
      tr.append(note);
    }
    return tr;
  }

  private value(parts: Segment[], split: string | undefined): HTMLTableCellElement {
    const td = el('td', 'rfk-value');
    const holder = split ? el('span', 'rfk-wrap rfk-list') : td;
    for (const [text, highlighted] of parts) {
      holder.append(
        highlighted && text ? el('span', 'rfk-hl', text) : document.createTextNode(text)
      );
      if (split && text === split) {
        holder.append(el('wbr')); // a list value wraps after its separators
      }
    }
    if (holder !== td) {
      td.append(holder);
    }
    if (parts.some(([t, hl]) => hl && t)) {
      td.classList.add('rfk-differs-value');
    }
    return td;
  }
}

/** A message in place of the view: unknown version or data that cannot be shown. The
 * bundle's text/plain, when there is one, is shown under it as plain text. */
export function errorView(error: unknown, fallbackText?: string): HTMLDivElement {
  const node = el('div', 'rfk-compare rfk-error');
  const why = error instanceof PayloadError ? error.message : `unexpected error: ${fmt(error)}`;
  node.append(el('p', 'rfk-error-message', `Cannot show this rootfs-kernel comparison: ${why}`));
  if (fallbackText) {
    node.append(el('pre', 'rfk-fallback', fallbackText));
  }
  return node;
}

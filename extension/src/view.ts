/**
 * The interactive comparison view, built with DOM calls only: every string from the
 * notebook goes in through text nodes or setAttribute, never as markup, and nothing in
 * it is evaluated. All state (opened path, filter, toggles, sort) lives here and every
 * change redraws from the payload through model.draw(), as the kernel's widget does.
 */

import {
  Choice,
  Drawing,
  Line,
  Payload,
  RowLine,
  Segment,
  Sort,
  SortColumn,
  State,
  crumbLabel,
  draw,
  fmt,
  initialState,
  navigable,
  neighbours,
  pieces,
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

/** Text nodes with a <wbr> where pieces() cuts: a path breaks between its directories,
 * not mid-name. */
export function breakable(text: string): Node[] {
  const out: Node[] = [];
  for (const piece of pieces(text)) {
    if (out.length) {
      out.push(document.createElement('wbr'));
    }
    out.push(document.createTextNode(piece));
  }
  if (/[/,|-]$/.test(text)) {
    out.push(document.createElement('wbr')); // a list's parts come one by one
  }
  return out;
}

function withText<T extends HTMLElement>(node: T, text: string): T {
  node.append(...breakable(text));
  return node;
}

const sameColumn = (a: SortColumn, b: SortColumn): boolean =>
  a.kind === b.kind && (a.kind !== 'value' || (b.kind === 'value' && a.name === b.name));

const OPEN_TITLES: Record<string, string> = {
  layers: 'open this layer',
  steps: 'open this step: what it did to the mount table'
};

/**
 * The view, drawn as the kernel's HTML draws it (views/html.py: the same classes, styled
 * by the same sheet, views/static.css) in this order: the heading, the controls, the
 * breadcrumb, the table.
 */
export class CompareView {
  readonly node: HTMLDivElement;
  private state: State;
  private sort: Sort | null = null;
  private readonly heading: HTMLDivElement;
  private readonly filter: HTMLInputElement;
  private readonly toggle: HTMLButtonElement | null = null;
  private readonly more: HTMLButtonElement | null = null;
  private readonly showAll: HTMLButtonElement;
  private readonly crumbs: HTMLElement;
  private readonly body: HTMLDivElement;

  constructor(private readonly payload: Payload) {
    this.state = initialState(payload);
    this.node = el('div', 'rfk-compare rfk-static');
    this.heading = el('div', 'rfk-heading');
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
      controls.append(this.toggle);
    }
    const hidden = draw(payload, this.state).more;
    if (hidden.length) {
      this.more = button('rfk-more-toggle', 'more columns', () => {
        this.state = { ...this.state, moreColumns: !this.state.moreColumns };
        this.redraw();
      });
      this.more.title = hidden.join(', ');
      controls.append(this.more);
    }
    this.showAll = button('rfk-show-all', 'show all', () => {
      this.state = { ...this.state, expanded: !this.state.expanded };
      this.redraw();
    });
    controls.append(this.showAll);
    this.crumbs = el('nav', 'rfk-crumbs');
    this.crumbs.setAttribute('aria-label', 'Opened row');
    this.body = el('div', 'rfk-body');
    this.node.append(this.heading, controls);
    if (navigable(payload)) {
      this.node.append(this.crumbs);
    }
    this.node.append(this.body);
    this.redraw();
  }

  private goTo(path: string[]): void {
    this.state = { ...this.state, path, expanded: false };
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

  /** The drawing, sorted when a column is: runs are unfolded first (sorting orders rows). */
  private view(): Drawing {
    const d = draw(this.payload, this.state);
    if (!this.sort) {
      return d;
    }
    const open = d.lines.some(ln => ln.kind === 'group')
      ? draw(this.payload, {
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
    const pressed = (b: HTMLButtonElement | null, on: boolean): void =>
      b?.setAttribute('aria-pressed', String(on));
    pressed(this.toggle, this.state.differencesOnly);
    pressed(this.more, this.state.moreColumns);
    const d = this.view();
    this.showAll.hidden = !d.footer;
    this.showAll.textContent = d.footer ? d.footer.action : '';
    pressed(this.showAll, this.state.expanded);
    this.drawHeading(d);

    const scroller = el('div', 'rfk-scroll');
    scroller.append(this.table(d));
    let main: HTMLElement = scroller;
    if (d.choices.length) {
      main = el('div', 'rfk-panes');
      const pane = el('div');
      pane.append(scroller);
      main.append(this.choices(d.choices), pane);
    }
    const parts: HTMLElement[] = [main];
    if (d.footer && d.footer.text) {
      parts.push(el('div', 'rfk-footer', d.footer.text));
    }
    if (d.note) {
      parts.push(withText(el('div', 'rfk-note rfk-truncated'), d.note));
    }
    this.body.replaceChildren(...parts);
  }

  private drawHeading(d: Drawing): void {
    const parts: HTMLElement[] = [withText(el('div', 'rfk-title'), d.title)];
    if (d.headline) {
      parts.push(el('div', 'rfk-headline', d.headline));
    }
    for (const name of d.names) {
      parts.push(withText(el('div', 'rfk-names'), name));
    }
    if (d.detail) {
      const box = el('div', 'rfk-detail');
      for (const [label, text] of d.detail.fields) {
        const line = el('div');
        line.append(el('span', 'rfk-label', `${label}:`), ' ', ...breakable(text));
        box.append(line);
      }
      if (d.detail.note) {
        box.append(withText(el('div', 'rfk-detail-note'), d.detail.note));
      }
      parts.push(box);
    }
    parts.push(el('div', 'rfk-summary', d.legend ? `${d.summary} · ${d.legend}` : d.summary));
    this.heading.replaceChildren(...parts);
  }

  private drawCrumbs(): void {
    const names = [topLabel(this.payload), ...this.state.path];
    const parts: HTMLElement[] = names.map((name, depth) => {
      const label = depth === 0 ? name : crumbLabel(this.payload, name);
      const b = button('rfk-crumb', label, () => this.goTo(this.state.path.slice(0, depth)));
      b.disabled = depth === names.length - 1;
      return b;
    });
    // %show steps: step through the opened step's neighbours.
    const [before, after] = neighbours(this.payload, this.state.path);
    if (before) {
      const b = button('rfk-step rfk-step-prev', '◀ previous step', () => this.goTo([before]));
      b.title = before;
      parts.push(b);
    }
    if (after) {
      const b = button('rfk-step rfk-step-next', 'next step ▶', () => this.goTo([after]));
      b.title = after;
      parts.push(b);
    }
    this.crumbs.replaceChildren(...parts);
  }

  /** %show layers: the stack beside the opened layer, each a button to open it. */
  private choices(items: Choice[]): HTMLOListElement {
    const list = el('ol', 'rfk-choices');
    for (const c of items) {
      const li = el('li', c.current ? 'rfk-current' : undefined);
      const open = button('rfk-choice-key rfk-open', c.key, () => this.goTo([c.key]));
      open.title = OPEN_TITLES.layers;
      if (c.current) {
        open.setAttribute('aria-current', 'true');
      }
      li.append(open);
      for (const text of c.lines) {
        if (text) {
          li.append(withText(el('div'), text));
        }
      }
      list.append(li);
    }
    return list;
  }

  private table(d: Drawing): HTMLTableElement {
    const p = this.payload;
    const both = twoSided(p);
    const ncols = (d.marks ? 1 : 0) + 1 + (d.notes ? 1 : 0) + (both ? 1 : 0) + d.columns.length;
    let cls = 'rfk-table';
    if (d.marks) {
      cls += ' rfk-marked';
    }
    if (p.kind === 'steps') {
      cls += ' rfk-notes-under';
    }
    // Keys that are names, not paths ("step 12", "mnt", "layer 1"): never wrapped.
    const names = ['steps', 'steps-vs', 'ns'];
    if (names.includes(p.kind) || (p.kind === 'layers' && !this.state.path.length)) {
      cls += ' rfk-whole-keys';
    }
    const table = el('table', cls);

    const head = el('tr');
    if (d.marks) {
      head.append(this.header('±', { kind: 'status' }, 'rfk-mark', 'sort by status (+, -, ~)'));
    }
    head.append(this.header(fmt(d.key.label), { kind: 'key' }, 'rfk-key'));
    if (both) {
      head.append(el('th', 'rfk-side', 'side'));
    }
    for (const c of d.columns) {
      head.append(this.header(fmt(c.label), { kind: 'value', name: c.name }));
    }
    if (d.notes) {
      head.append(el('th', 'rfk-row-note', 'note'));
    }
    table.createTHead().append(head);

    const tbody = table.createTBody();
    for (const ln of d.lines) {
      if (ln.kind === 'section') {
        const tr = el('tr', 'rfk-section');
        const td = el('td', undefined, ln.text);
        td.colSpan = ncols;
        tr.append(td);
        tbody.append(tr);
      } else if (ln.kind === 'group') {
        tbody.append(this.group(ln, d));
      } else {
        tbody.append(this.line(ln, both, d));
        const last = ln.span === 1 || !ln.first;
        if (last && ln.row.note) {
          tbody.append(this.noteLine(ln, d, ncols));
        }
      }
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

  private group(ln: Extract<Line, { kind: 'group' }>, d: Drawing): HTMLTableRowElement {
    const tr = el('tr', `rfk-row rfk-group-row rfk-${ln.status}`);
    tr.dataset.status = ln.status;
    const key = el('td', 'rfk-key');
    const unfold = button('rfk-unfold', '', () => {
      this.state = { ...this.state, expanded: true };
      this.redraw();
    });
    unfold.append(...breakable(ln.key));
    unfold.title = `show these ${ln.count} rows`;
    key.append(unfold);
    const text = el('td', 'rfk-group', ln.text);
    text.colSpan = (twoSided(this.payload) ? 1 : 0) + d.columns.length;
    if (d.marks) {
      tr.append(el('td', 'rfk-mark', ln.mark));
    }
    tr.append(key, text);
    if (d.notes) {
      tr.append(el('td', 'rfk-row-note'));
    }
    return tr;
  }

  private line(ln: RowLine, both: boolean, d: Drawing): HTMLTableRowElement {
    const row = ln.row;
    const tr = el('tr', `rfk-row rfk-${row.status}${ln.first ? '' : ' rfk-second'}`);
    tr.dataset.status = row.status;
    tr.dataset.side = ln.side;
    if (ln.first) {
      if (d.marks) {
        const mark = el('td', 'rfk-mark', ln.mark);
        mark.rowSpan = ln.span;
        tr.append(mark);
      }
      const key = el('td', 'rfk-key');
      key.rowSpan = ln.span;
      if (ln.depth) {
        key.style.paddingLeft = `calc(var(--rfk-pad) + ${ln.depth * 2}ch)`;
      }
      if (row.children) {
        const open = button('rfk-open', '', () => this.goTo([...this.state.path, fmt(row.key)]));
        open.append(...breakable(ln.key));
        open.title = OPEN_TITLES[this.payload.kind as string] ?? 'open this directory';
        key.append(open);
      } else {
        key.append(...breakable(ln.key));
      }
      tr.append(key);
    }
    if (both) {
      tr.append(el('td', 'rfk-side', ln.side));
    }
    d.columns.forEach((column, i) => {
      tr.append(this.value(ln.values[i], column.bar ? ln.bar : undefined));
    });
    if (ln.first && d.notes) {
      const note = el('td', 'rfk-row-note');
      note.rowSpan = ln.span;
      if (ln.note) {
        note.append(withText(el('span'), ln.note));
      }
      tr.append(note);
    }
    return tr;
  }

  /** The row's note as a line of its own under it (where the note column would not fit). */
  private noteLine(ln: RowLine, d: Drawing, ncols: number): HTMLTableRowElement {
    const tr = el('tr', `rfk-noteline rfk-${ln.status}`);
    if (d.marks) {
      tr.append(el('td', 'rfk-mark'));
    }
    const td = withText(el('td'), fmt(ln.row.note));
    td.colSpan = ncols - (d.marks ? 1 : 0);
    tr.append(td);
    return tr;
  }

  private value(parts: Segment[], bar?: [number, number] | null): HTMLTableCellElement {
    const td = el('td', bar !== undefined ? 'rfk-took' : 'rfk-value');
    if (bar) {
      const track = el('span', 'rfk-bar');
      const fill = el('i');
      fill.style.left = `${bar[0] / 10}%`;
      fill.style.width = `${bar[1] / 10}%`;
      track.append(fill);
      td.append(track);
    }
    for (const [text, highlighted] of parts) {
      if (highlighted && text) {
        td.append(withText(el('span', 'rfk-hl'), text));
      } else {
        td.append(...breakable(text));
      }
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

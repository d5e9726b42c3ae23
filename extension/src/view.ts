/**
 * The interactive comparison view, built with DOM calls only: every string from the
 * notebook goes in through textContent or setAttribute, never as markup, and nothing in
 * it is evaluated. All state (opened path, filter, toggle, sort) lives here and every
 * change redraws the table from the payload, as the kernel's widget does.
 */

import {
  Line,
  Payload,
  PayloadError,
  Row,
  Sort,
  SortColumn,
  fmt,
  keyLabel,
  legendText,
  level,
  levelTitle,
  lines,
  selectRows,
  sortRows,
  summaryText,
  truncationNote,
  twoSided
} from './payload';

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

const sameColumn = (a: SortColumn, b: SortColumn): boolean =>
  a.kind === b.kind && (a.kind !== 'value' || (b.kind === 'value' && a.name === b.name));

export class CompareView {
  readonly node: HTMLDivElement;
  private path: string[] = [];
  private query = '';
  private differencesOnly = false;
  private sort: Sort | null = null;
  private readonly filter: HTMLInputElement;
  private readonly toggle: HTMLButtonElement;
  private readonly crumbs: HTMLElement;
  private readonly body: HTMLDivElement;

  constructor(private readonly payload: Payload) {
    this.node = el('div', 'rfk-compare');
    const controls = el('div', 'rfk-controls');
    this.filter = el('input', 'rfk-filter');
    this.filter.type = 'search';
    this.filter.placeholder = 'filter rows (substring)';
    this.filter.setAttribute('aria-label', 'Filter rows');
    this.filter.addEventListener('input', () => {
      this.query = this.filter.value;
      this.redraw();
    });
    this.toggle = el('button', 'rfk-diff-toggle', 'differences only');
    this.toggle.type = 'button';
    this.toggle.title = 'hide rows that are the same on both sides';
    this.toggle.setAttribute('aria-pressed', 'false');
    this.toggle.addEventListener('click', () => {
      this.differencesOnly = !this.differencesOnly;
      this.toggle.setAttribute('aria-pressed', String(this.differencesOnly));
      this.redraw();
    });
    controls.append(this.filter, this.toggle);
    this.crumbs = el('nav', 'rfk-crumbs');
    this.crumbs.setAttribute('aria-label', 'Opened directory');
    this.body = el('div', 'rfk-body');
    this.node.append(controls);
    if (payload.kind === 'listing') {
      this.node.append(this.crumbs);
    }
    this.node.append(this.body);
    this.redraw();
  }

  private open(name: string): void {
    this.path = [...this.path, name];
    this.redraw();
  }

  private goUp(depth: number): void {
    this.path = this.path.slice(0, depth);
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

  private redraw(): void {
    if (this.payload.kind === 'listing') {
      this.drawCrumbs();
    }
    const node = level(this.payload, this.path);
    const heading = el('div', 'rfk-heading');
    heading.append(
      el('b', 'rfk-title', levelTitle(this.payload, this.path)),
      el('br'),
      el('span', 'rfk-summary', summaryText(this.payload, node.summary)),
      document.createTextNode('\u00a0\u00a0·\u00a0\u00a0'),
      el('span', 'rfk-legend', legendText(this.payload))
    );
    const scroller = el('div', 'rfk-scroll');
    scroller.append(this.table());
    this.body.replaceChildren(heading, scroller);
  }

  private drawCrumbs(): void {
    const top = fmt(this.payload.paths?.cell) || '/';
    const names = [top, ...this.path];
    this.crumbs.replaceChildren(
      ...names.map((name, depth) => {
        const b = el('button', 'rfk-crumb', depth === 0 ? name : `${name}/`);
        b.type = 'button';
        b.disabled = depth === names.length - 1;
        b.addEventListener('click', () => this.goUp(depth));
        return b;
      })
    );
  }

  private table(): HTMLTableElement {
    const p = this.payload;
    const node = level(p, this.path);
    const rows = sortRows(selectRows(node.rows, this.query, this.differencesOnly), this.sort);
    const names = p.columns.map(c => c.name);
    const both = twoSided(p);
    const ncols = 2 + (both ? 1 : 0) + names.length;

    const table = el('table', 'rfk-table');

    const head = el('tr');
    head.append(this.header('', { kind: 'status' }, 'sort by status'));
    head.append(this.header(fmt(p.key?.label), { kind: 'key' }));
    if (both) {
      head.append(el('th', undefined, 'side'));
    }
    for (const c of p.columns) {
      head.append(this.header(fmt(c.label), { kind: 'value', name: c.name }));
    }
    table.createTHead().append(head);

    const tbody = table.createTBody();
    for (const ln of lines(rows, names, both)) {
      tbody.append(this.line(ln, names, both));
    }
    if (!rows.length) {
      const tr = el('tr');
      const td = el('td', 'rfk-note', 'no matching rows');
      td.colSpan = ncols;
      tr.append(td);
      tbody.append(tr);
    }
    const note = truncationNote(p);
    if (note) {
      const tr = el('tr');
      const td = el('td', 'rfk-note rfk-truncated', note);
      td.colSpan = ncols;
      tr.append(td);
      table.createTFoot().append(tr);
    }
    return table;
  }

  private header(label: string, column: SortColumn, title?: string): HTMLTableCellElement {
    const th = el('th');
    const b = el('button', 'rfk-sort', label);
    b.type = 'button';
    b.title = title ?? `sort by ${label}`;
    const active = this.sort && sameColumn(this.sort.column, column);
    if (active) {
      th.setAttribute('aria-sort', this.sort!.descending ? 'descending' : 'ascending');
      b.append(el('span', 'rfk-sort-mark', this.sort!.descending ? ' ▼' : ' ▲'));
    }
    b.addEventListener('click', () => this.sortBy(column));
    th.append(b);
    return th;
  }

  private line(ln: Line, names: string[], both: boolean): HTMLTableRowElement {
    const row: Row = ln.row;
    const tr = el('tr', `rfk-row rfk-${row.status}`);
    tr.dataset.status = row.status;
    tr.dataset.side = ln.side;
    if (ln.first) {
      const span = both && row.status === 'differs' ? 2 : 1;
      const mark = el('td', 'rfk-mark', fmt(row.mark));
      mark.rowSpan = span;
      const key = el('td', 'rfk-key');
      key.rowSpan = span;
      if (row.children) {
        const open = el('button', 'rfk-open', keyLabel(row));
        open.type = 'button';
        open.title = 'open this directory';
        open.addEventListener('click', () => this.open(fmt(row.key)));
        key.append(open);
      } else {
        key.textContent = keyLabel(row);
      }
      if (row.notes && typeof row.notes === 'object') {
        const text = Object.entries(row.notes)
          .map(([side, why]) => `${side}: ${fmt(why)}`)
          .join('; ');
        key.append(el('span', 'rfk-row-note', ` (${text})`));
      }
      tr.append(mark, key);
    }
    if (both) {
      tr.append(el('td', 'rfk-side', ln.side));
    }
    names.forEach((name, i) => {
      const differs = row.differs && row.differs[name] === true;
      tr.append(el('td', differs ? 'rfk-value rfk-differs-value' : 'rfk-value', ln.values[i]));
    });
    return tr;
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

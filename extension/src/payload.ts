/**
 * The comparison payload (schema version 1, see kernel/rootfs_kernel/views/payload.py)
 * and the pure functions every view is derived from: navigation, filtering, sorting,
 * display lines and texts. They mirror payload.py and _lines.py so that this renderer
 * shows what the HTML renderer and the widget show. No DOM here.
 */

export const MIME_TYPE = 'application/vnd.rootfs-kernel.compare+json';
export const SUPPORTED_MAJOR = 1;

export type Status = 'same' | 'only-cell' | 'only-host' | 'differs';
export const STATUSES: Status[] = ['same', 'only-cell', 'only-host', 'differs'];
export type Value = string | number | boolean | null;
export type Values = { [name: string]: Value };

export interface Row {
  key: Value;
  status: Status;
  mark: string;
  cell: Values | null;
  host: Values | null;
  differs: { [name: string]: boolean };
  children?: Level;
  notes?: { [side: string]: string };
}

export interface Level {
  rows: Row[];
  summary: { [status: string]: number };
}

export interface Payload extends Level {
  version: number;
  kind: string;
  title: string;
  sides: string[];
  key: { name: string; label: string };
  columns: { name: string; label: string }[];
  legend: [string, string][];
  truncated?: boolean;
  note?: string | null;
  notes?: { [side: string]: string };
  paths?: { cell?: string | null; host?: string | null };
}

/** Thrown for data this renderer cannot show; the message is shown to the reader. */
export class PayloadError extends Error {}

const own = (obj: unknown, name: string): boolean =>
  typeof obj === 'object' && obj !== null && Object.prototype.hasOwnProperty.call(obj, name);

/** A value of a plain JSON object, never one inherited from Object.prototype. */
export function get(obj: unknown, name: string): unknown {
  return own(obj, name) ? (obj as { [k: string]: unknown })[name] : undefined;
}

export function fmt(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

function checkLevel(level: unknown, where: string): void {
  const rows = get(level, 'rows');
  if (!Array.isArray(rows)) {
    throw new PayloadError(`${where}: "rows" is not a list`);
  }
  rows.forEach((row, i) => {
    const status = get(row, 'status');
    if (!STATUSES.includes(status as Status)) {
      throw new PayloadError(`${where}: row ${i} has an unknown status ${JSON.stringify(status)}`);
    }
    const kids = get(row, 'children');
    if (kids !== undefined) {
      checkLevel(kids, `${where}/${fmt(get(row, 'key'))}`);
    }
  });
}

/**
 * The payload if this renderer can show it, else a PayloadError that says why
 * (an unknown major version first: newer kernels may change the shape).
 */
export function checkPayload(data: unknown): Payload {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new PayloadError('the comparison data is not a JSON object');
  }
  const version = get(data, 'version');
  const major = typeof version === 'number' ? Math.floor(version) : NaN;
  if (major !== SUPPORTED_MAJOR) {
    throw new PayloadError(
      `this comparison was saved with payload version ${JSON.stringify(version ?? null)}, ` +
        `but the installed rootfs-kernel renderer reads version ${SUPPORTED_MAJOR} only; ` +
        'install the rootfs-kernel release that wrote this notebook (or a newer one).'
    );
  }
  const sides = get(data, 'sides');
  const columns = get(data, 'columns');
  if (!Array.isArray(sides) || sides.length < 1 || sides.length > 2) {
    throw new PayloadError('"sides" must list one or two sides');
  }
  if (!Array.isArray(columns) || !columns.every(c => typeof get(c, 'name') === 'string')) {
    throw new PayloadError('"columns" must be a list of {name, label}');
  }
  checkLevel(data, 'payload');
  return data as Payload;
}

export function twoSided(p: Payload): boolean {
  return p.sides.length === 2;
}

/** The rows at `path` (opened directory names); throws if a name is not openable. */
export function level(p: Payload, path: string[]): Level {
  let node: Level = { rows: p.rows, summary: p.summary };
  for (const name of path) {
    const row = node.rows.find(r => fmt(r.key) === name);
    if (!row || !row.children) {
      throw new PayloadError(`${name} is not a directory with recorded children here`);
    }
    node = row.children;
  }
  return node;
}

function rowText(row: Row): string {
  const parts = [fmt(row.key)];
  for (const side of ['cell', 'host']) {
    const values = get(row, side);
    if (values && typeof values === 'object') {
      for (const v of Object.values(values as Values)) {
        if (v !== null && v !== undefined) {
          parts.push(String(v));
        }
      }
    }
  }
  return parts.join('\0').toLowerCase();
}

/** Rows matching a case-insensitive substring (key or any value), minus "same" rows
 * when differencesOnly: payload.select_rows(). */
export function selectRows(rows: Row[], query: string, differencesOnly: boolean): Row[] {
  const q = query.trim().toLowerCase();
  return rows.filter(
    r => !(differencesOnly && r.status === 'same') && (!q || rowText(r).includes(q))
  );
}

/** What a column sorts by: the mark column, the key column, or a value column. */
export type SortColumn = { kind: 'status' } | { kind: 'key' } | { kind: 'value'; name: string };
export interface Sort {
  column: SortColumn;
  descending: boolean;
}

function sortValue(row: Row, column: SortColumn): Value {
  switch (column.kind) {
    case 'status':
      return STATUSES.indexOf(row.status);
    case 'key':
      return row.key;
    default: {
      // The cell's value when it has one (a "differs" row sorts by its first line).
      const values = row.cell ?? row.host;
      const v = get(values, column.name);
      return v === undefined ? null : (v as Value);
    }
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function compareValues(a: Value, b: Value): number {
  if (a === null || a === '') {
    return b === null || b === '' ? 0 : 1; // empty values last
  }
  if (b === null || b === '') {
    return -1;
  }
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return collator.compare(String(a), String(b));
}

/** A sorted copy (stable: equal rows keep the payload's order). */
export function sortRows(rows: Row[], sort: Sort | null): Row[] {
  if (!sort) {
    return rows;
  }
  const sign = sort.descending ? -1 : 1;
  return rows
    .map((row, i) => ({ row, i }))
    .sort((x, y) => {
      const c = compareValues(sortValue(x.row, sort.column), sortValue(y.row, sort.column));
      return c !== 0 ? sign * c : x.i - y.i;
    })
    .map(x => x.row);
}

export interface Line {
  row: Row;
  side: 'both' | 'cell' | 'host';
  values: string[];
  first: boolean;
}

/** A "same" row is one line, a one-sided row one line for its side, a "differs" row
 * two lines (cell, then host): _lines.lines(). */
export function lines(rows: Row[], names: string[], isTwoSided: boolean): Line[] {
  const out: Line[] = [];
  for (const row of rows) {
    let sides: Line['side'][];
    if (!isTwoSided) {
      sides = ['cell'];
    } else if (row.status === 'same') {
      sides = ['both'];
    } else if (row.status === 'only-cell') {
      sides = ['cell'];
    } else if (row.status === 'only-host') {
      sides = ['host'];
    } else {
      sides = ['cell', 'host'];
    }
    sides.forEach((side, i) => {
      const values = get(row, side === 'both' ? 'cell' : side);
      out.push({ row, side, values: names.map(n => fmt(get(values, n))), first: i === 0 });
    });
  }
  return out;
}

export function keyLabel(row: Row): string {
  return row.children ? `${fmt(row.key)}/` : fmt(row.key);
}

export function summaryText(p: Payload, summary: Level['summary']): string {
  const n = (s: string) => Number(get(summary, s) ?? 0);
  const parts: [number, string][] =
    p.kind === 'changes'
      ? [
          [n('only-cell'), 'added'],
          [n('differs'), 'changed'],
          [n('only-host'), 'deleted']
        ]
      : [
          [n('only-cell'), 'only in cell'],
          [n('only-host'), 'only on host'],
          [n('differs'), 'differ'],
          [n('same'), 'same']
        ];
  return parts.map(([count, what]) => `${count} ${what}`).join(', ');
}

export function legendText(p: Payload): string {
  const legend = Array.isArray(p.legend) ? p.legend : [];
  return (
    'legend: ' +
    legend
      .map(([mark, meaning]) => `${fmt(mark).trim() ? fmt(mark) : '(blank)'} ${fmt(meaning)}`)
      .join('   ')
  );
}

export function levelTitle(p: Payload, path: string[]): string {
  return path.length ? `${fmt(p.title)}, in ${path.join('/')}/` : fmt(p.title);
}

/** The note under the table: the payload's own note, or a plain one if it was cut. */
export function truncationNote(p: Payload): string | null {
  if (p.note) {
    return `note: ${fmt(p.note)}`;
  }
  return p.truncated ? 'note: a snapshot was truncated; not every entry is shown' : null;
}

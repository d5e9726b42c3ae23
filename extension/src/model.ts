/**
 * The view model: (payload, view state) -> the lines every rendering shows. The
 * same functions as kernel/rootfs_kernel/views/model.py, checked against the same
 * golden fixtures (tests/fixtures/payloads/, extension/test/golden.test.ts), so this
 * renderer draws what the kernel's HTML, text and widget draw. No DOM here.
 */

import type { Column, ComparePayload, Group, LegendEntry, Level, Row, Section, Status } from './schema';

export type Payload = ComparePayload;
export const COLLAPSE_OVER = 20;
export const MARKS: Record<Status, string> = {
  same: ' ',
  'only-cell': '+',
  'only-host': '-',
  differs: '~'
};
export const STATUSES: Status[] = ['same', 'only-cell', 'only-host', 'differs'];

export interface State {
  path: string[];
  query: string;
  differencesOnly: boolean;
  expanded: boolean;
  moreColumns: boolean;
}

/** Where a view opens: %show layers on its selected layer (the cell's own), the rest at
 * the top. model.initial_state(). */
export const initialState = (p?: Payload): State => ({
  path: p?.selected ? [p.selected] : [],
  query: '',
  differencesOnly: false,
  expanded: false,
  moreColumns: false
});

/** A value as [text, highlighted] parts. */
export type Segment = [string, boolean];

export interface RowLine {
  kind: 'row';
  status: Status;
  mark: string;
  key: string;
  depth: number;
  side: string;
  values: Segment[][];
  bar: [number, number] | null;
  note: string;
  first: boolean;
  span: number;
  row: Row;
}

export interface GroupLine {
  kind: 'group';
  status: Status;
  mark: string;
  key: string;
  text: string;
  count: number;
}

export interface SectionLine {
  kind: 'section';
  text: string;
}

export type Line = RowLine | GroupLine | SectionLine;

export interface Footer {
  text: string;
  action: string;
}

export interface Detail {
  key: string;
  fields: [string, string][];
  note: string;
}

export interface Choice {
  key: string;
  current: boolean;
  lines: string[];
}

export interface Drawing {
  title: string;
  key: Column;
  columns: Column[];
  more: string[];
  marks: boolean;
  notes: boolean;
  headline: string | null;
  names: string[];
  detail: Detail | null;
  choices: Choice[];
  summary: string;
  legend: string;
  note: string | null;
  lines: Line[];
  empty: string | null;
  footer: Footer | null;
  collapsed: boolean;
}

/** `text` cut where it may wrap, as html.py's pieces(): after '/', '-', ',' and '|', and
 * a long run without any (a digest) every few characters. */
export function pieces(text: string): string[] {
  const out: string[] = [];
  for (const part of text.match(/[^/,|-]*(?:[/,|-]|$)/g) ?? []) {
    let at = 0;
    for (const run of part.matchAll(/\S{16,}/g)) {
      // in pieces of about equal length
      const start = run.index ?? 0;
      const size = Math.ceil(run[0].length / Math.ceil(run[0].length / 10));
      for (let cut = start + size; cut < start + run[0].length; cut += size) {
        out.push(part.slice(at, cut));
        at = cut;
      }
    }
    out.push(part.slice(at));
  }
  return out.filter(p => p);
}

export function fmt(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

export function twoSided(p: Payload): boolean {
  return p.sides.length === 2;
}

export function sideLabel(p: Payload, side: string): string {
  if (side === 'both') {
    return 'both';
  }
  const found = p.sides.find(s => s.name === side);
  return found ? found.label : side;
}

/** A row's values on one side; a "same" row keeps only the cell's (they are equal). */
export function sideValues(row: Row, side: 'cell' | 'host'): Row['cell'] | undefined {
  if (side === 'host' && row.status === 'same') {
    return row.cell;
  }
  return row[side];
}

/** A level's legend: its own (a layer's entries), else what every level below the top
 * shares (the payload's "level": a step's mount changes), else the payload's. */
export function levelLegend(p: Payload, node: Level): LegendEntry[] {
  return node.legend?.length ? node.legend : p.level?.legend?.length ? p.level.legend : p.legend;
}

function marks(legend: LegendEntry[]): Record<string, string> {
  const out: Record<string, string> = { ...MARKS };
  for (const e of legend) {
    out[e.status] = e.mark;
  }
  return out;
}

/** Rows that open onto a level below: a listing's directories, a stack's layers, the
 * setup's steps. */
export function navigable(p: Payload): boolean {
  return p.kind === 'listing' || p.kind === 'layers' || p.kind === 'steps';
}

/** The first breadcrumb: the listed directory, or what a stack's top level holds. */
export function topLabel(p: Payload): string {
  return p.kind === 'layers' || p.kind === 'steps' ? p.kind : fmt(p.paths?.cell) || '/';
}

/** An opened row in the breadcrumb: a directory ends with '/', a layer or a step does
 * not. model.crumb_label(). */
export function crumbLabel(p: Payload, name: string): string {
  return p.kind === 'listing' ? `${name}/` : name;
}

/** The steps before and after the opened one (%show steps), to step through them:
 * [null, null] anywhere else. model.neighbours(). */
export function neighbours(p: Payload, path: string[]): [string | null, string | null] {
  if (p.kind !== 'steps' || path.length !== 1) {
    return [null, null];
  }
  const keys = p.rows.filter(r => r.children).map(r => r.key);
  const i = keys.indexOf(path[0]);
  if (i < 0) {
    return [null, null];
  }
  return [i > 0 ? keys[i - 1] : null, i + 1 < keys.length ? keys[i + 1] : null];
}

/** A level's value columns: its own (a layer opens onto paths), else the payload's. */
export function levelColumns(p: Payload, node: Level): Column[] {
  return node.columns?.length ? node.columns : p.level?.columns?.length ? p.level.columns : p.columns;
}

/** Key as displayed: directories that can be opened end with '/' (a listing's). */
export function keyLabel(p: Payload, row: Row): string {
  return row.children && p.kind === 'listing' ? `${fmt(row.key)}/` : fmt(row.key);
}

/** A level of absolute paths as a file tree: each key -> [its name below the nearest
 * listed ancestor, how many listed ancestors it has]. model.tree_keys(). */
export function treeKeys(rows: Row[]): Map<string, [string, number]> {
  const present = new Set(rows.map(r => r.key));
  const out = new Map<string, [string, number]>();
  for (const r of rows) {
    const parts = r.key.replace(/^\/+|\/+$/g, '').split('/');
    let depth = 0;
    let cut = 0;
    for (let i = 1; i < parts.length; i++) {
      if (present.has('/' + parts.slice(0, i).join('/'))) {
        depth += 1;
        cut = i;
      }
    }
    let name = cut ? parts.slice(cut).join('/') : r.key;
    if (r.cell && r.cell.type === 'dir') {
      name += '/';
    }
    out.set(r.key, [name, depth]);
  }
  return out;
}

export function lineSides(row: Row, both: boolean): ('both' | 'cell' | 'host')[] {
  if (!both) {
    return ['cell'];
  }
  switch (row.status) {
    case 'same':
      return ['both'];
    case 'only-cell':
      return ['cell'];
    case 'only-host':
      return ['host'];
    default:
      return ['cell', 'host'];
  }
}

/** A split column highlights only its parts the other side lacks; another column is
 * highlighted whole when it differs. */
export function segments(
  row: Row,
  column: Payload['columns'][number],
  side: 'both' | 'cell' | 'host'
): Segment[] {
  const values = sideValues(row, side === 'both' ? 'cell' : side) ?? {};
  const text = fmt(values[column.name]);
  if (!(row.differs ?? []).includes(column.name)) {
    return [[text, false]];
  }
  const sep = column.split;
  if (!sep || row.status !== 'differs') {
    return [[text, true]];
  }
  const other = sideValues(row, side === 'cell' ? 'host' : 'cell') ?? {};
  const theirs = new Set(fmt(other[column.name]).split(sep));
  const out: Segment[] = [];
  text.split(sep).forEach((part, i) => {
    if (i) {
      out.push([sep, false]);
    }
    out.push([part, !theirs.has(part)]);
  });
  return out;
}

/** What a filter searches: the key, every value, the side labels and the note. */
export function rowText(p: Payload, row: Row): string {
  const parts = [fmt(row.key)];
  for (const side of ['cell', 'host'] as const) {
    const values = row[side];
    if (values) {
      for (const v of Object.values(values)) {
        if (v !== null && v !== undefined) {
          parts.push(String(v));
        }
      }
    }
  }
  for (const s of lineSides(row, twoSided(p))) {
    parts.push(sideLabel(p, s));
  }
  if (row.note) {
    parts.push(row.note);
  }
  return parts.join('\0').toLowerCase();
}

export function summaryText(
  p: Payload,
  summary: Level['summary'],
  legend: LegendEntry[] = p.legend
): string {
  // A one-sided view counts its "same" rows (a stack's layers, the steps) only where it
  // has some.
  return legend
    .filter(e => e.status !== 'same' || summary.same > 0 || twoSided(p))
    .map(e => `${summary[e.status]} ${e.text}`)
    .join(', ');
}

/** The marks in words; '' where no entry has a mark (the steps, the layers). */
export function legendText(p: Payload, legend: LegendEntry[] = p.legend): string {
  if (!legend.some(e => e.mark.trim())) {
    return '';
  }
  return (
    'legend: ' + legend.map(e => `${e.mark.trim() ? e.mark : '(blank)'} ${e.text}`).join('   ')
  );
}

/** The payload's title, plus the opened row: model.level_title(). */
export function levelTitle(p: Payload, path: string[]): string {
  if (!path.length) {
    return p.title;
  }
  if (p.kind === 'listing') {
    return `${p.title}, in ${path.join('/')}/`;
  }
  return `${p.title}: ${path.join(' / ')}`;
}

/** The names the rows use for long paths, said once: "$CELL = /tmp/...". */
export function namesText(p: Payload): string[] {
  return Object.entries(p.names ?? {}).map(([name, value]) => `${name} = ${value}`);
}

/** The opened step, repeated above its table: model.opened_detail(). */
export function openedDetail(p: Payload, path: string[]): Detail | null {
  if (!path.length || p.kind !== 'steps') {
    return null;
  }
  const row = p.rows.find(r => r.key === path[0]);
  if (!row) {
    return null;
  }
  const values = row.cell ?? {};
  const fields: [string, string][] = p.columns
    .filter(c => fmt(values[c.name]))
    .map(c => [c.label, fmt(values[c.name])]);
  return { key: row.key, fields, note: fmt(row.note) };
}

/** %show layers: the stack beside the opened layer, as dive lists it: model.choices(). */
export function choices(p: Payload, path: string[]): Choice[] {
  if (!p.selected || !path.length) {
    return [];
  }
  return p.rows.map(row => {
    const v = row.cell ?? {};
    const join = (names: string[]): string =>
      names
        .filter(n => v[n])
        .map(n => fmt(v[n]))
        .join(' · ');
    return {
      key: row.key,
      current: row.key === path[0],
      lines: [join(['changes', 'size', 'digest']), join(['created_by', 'role'])]
    };
  });
}

export function noteText(p: Payload): string | null {
  if (p.note) {
    return `note: ${p.note}`;
  }
  return p.truncated ? 'note: a snapshot was truncated; not every entry is shown' : null;
}

/** The level at `path` (opened directory names); throws if a name is not openable. */
export function level(p: Payload, path: string[]): Level {
  let node: Level = p;
  for (const name of path) {
    const row = node.rows.find(r => r.key === name);
    if (!row || !row.children) {
      throw new Error(`${name} is not a directory with recorded children here`);
    }
    node = row.children;
  }
  return node;
}

function rowLines(
  p: Payload,
  row: Row,
  mark: string,
  columns: Column[],
  tree: Map<string, [string, number]> | null
): RowLine[] {
  const both = twoSided(p);
  const sides = lineSides(row, both);
  const [key, depth] = tree?.get(row.key) ?? [keyLabel(p, row), 0];
  return sides.map((side, i) => ({
    kind: 'row',
    status: row.status,
    mark,
    key,
    depth,
    side: both ? sideLabel(p, side) : '',
    values: columns.map(c => segments(row, c, side)),
    bar: i === 0 && row.bar ? row.bar : null,
    note: i === 0 ? fmt(row.note) : '',
    first: i === 0,
    span: sides.length,
    row
  }));
}

/** The lines of one level in one state, with every text around them: model.draw(). */
export function draw(p: Payload, state: State): Drawing {
  const node = level(p, state.path);
  const rows = node.rows;
  const summary = node.summary;
  const groups: Group[] = node.groups ?? [];
  const legend = levelLegend(p, node);
  const query = state.query.trim().toLowerCase();
  // Only a comparison hides its "same" rows (in a one-sided view they are the content).
  const collapsible =
    rows.length > COLLAPSE_OVER && ((summary.same > 0 && twoSided(p)) || groups.length > 0);
  const collapsed = collapsible && !state.expanded && !query;
  const hideSame = state.differencesOnly || collapsed;
  const folds = new Map<number, Group>();
  if (collapsed) {
    for (const g of groups) {
      folds.set(g.start, g);
    }
  }
  const sections = new Map<number, Section>();
  if (!state.path.length) {
    for (const sec of p.sections ?? []) {
      sections.set(sec.start, sec);
    }
  }
  const mark = marks(legend);
  const every = levelColumns(p, node);
  const more = every.filter(c => c.more).map(c => c.label);
  // The columns a reader needs first, then (switched on) the rest.
  const columns = [
    ...every.filter(c => !c.more),
    ...(state.moreColumns ? every.filter(c => c.more) : [])
  ];
  const tree = node.tree ? treeKeys(rows) : null;

  const lines: Line[] = [];
  let shown = 0;
  let folded = 0;
  let section: Section | null = null; // the section whose heading is still to be drawn
  let i = 0;
  while (i < rows.length) {
    const row = rows[i];
    section = sections.get(i) ?? section;
    const g = folds.get(i);
    if (g) {
      lines.push({
        kind: 'group',
        status: row.status,
        mark: mark[row.status],
        key: g.label,
        text: g.text,
        count: g.count
      });
      shown += g.count;
      folded += g.count;
      i += g.count;
      continue;
    }
    i += 1;
    if ((hideSame && row.status === 'same') || (query && !rowText(p, row).includes(query))) {
      continue;
    }
    if (section) {
      lines.push({ kind: 'section', text: section.text });
      section = null;
    }
    shown += 1;
    lines.push(...rowLines(p, row, mark[row.status], columns, tree));
  }

  let empty: string | null = null;
  if (!shown) {
    if (query || state.differencesOnly) {
      empty = 'no matching rows';
    } else if (collapsed) {
      empty = `no differences: the ${rows.length} rows are the same`;
    } else if (p.kind === 'listing') {
      empty =
        !p.note || state.path.length ? 'empty directory' : 'nothing was read (see the note)';
    } else if (p.kind === 'layers' && state.path.length) {
      empty =
        node === p.rows[p.rows.length - 1].children
          ? 'no path is in more than one layer'
          : 'an empty layer';
    } else if (p.kind === 'steps' && state.path.length) {
      empty = 'no change to the mount table';
    } else {
      empty = 'no rows';
    }
  }
  let footer: Footer | null = null;
  if (collapsible) {
    if (collapsed) {
      const parts: string[] = [];
      const hidden = rows.length - shown;
      if (hidden) {
        parts.push(`${hidden} same row${hidden === 1 ? '' : 's'} hidden`);
      }
      if (folded) {
        const n = lines.filter(ln => ln.kind === 'group').length;
        parts.push(`${folded} alike rows folded into ${n} lines`);
      }
      footer = { text: parts.join('; '), action: `show all ${rows.length} rows` };
    } else {
      footer = { text: '', action: 'collapse to the differences' };
    }
  }
  return {
    title: levelTitle(p, state.path),
    key: node.key ?? p.level?.key ?? p.key,
    columns,
    more,
    marks: legend.some(e => summary[e.status] > 0 && e.mark.trim() !== ''),
    notes: rows.some(r => !!r.note),
    // (the stack's headline stays beside its opened layer)
    headline: state.path.length && !p.selected ? null : p.headline || null,
    names: namesText(p),
    detail: openedDetail(p, state.path),
    choices: choices(p, state.path),
    summary: summaryText(p, summary, legend),
    legend: legendText(p, legend),
    note: noteText(p),
    lines,
    empty,
    footer,
    collapsed
  };
}

/** One line as a test reads it: model.line_text(). */
export function lineText(line: Line, both: boolean): string {
  if (line.kind === 'group') {
    return `group: ${line.mark} | ${line.key} | ${line.text}`;
  }
  if (line.kind === 'section') {
    return `section: ${line.text}`;
  }
  const key = '.'.repeat(line.depth) + line.key;
  const cells = [line.first ? line.mark : '', line.first ? key : ''];
  if (both) {
    cells.push(line.side);
  }
  for (const v of line.values) {
    cells.push(v.map(([t, hl]) => (hl ? `«${t}»` : t)).join(''));
  }
  cells.push(line.note);
  return cells.join(' | ');
}

/** Sorting (this renderer only): what a column sorts by. */
export type SortColumn = { kind: 'status' } | { kind: 'key' } | { kind: 'value'; name: string };
export interface Sort {
  column: SortColumn;
  descending: boolean;
}

function sortValue(row: Row, column: SortColumn): string | number | null {
  switch (column.kind) {
    case 'status':
      return STATUSES.indexOf(row.status);
    case 'key':
      return row.key;
    default: {
      const values = row.cell ?? row.host ?? {};
      const v = values[column.name];
      return v === undefined ? null : v;
    }
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function compareValues(a: string | number | null, b: string | number | null): number {
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

/** The drawing's row lines in sorted order (stable; folded groups are unfolded first by
 * the caller: sorting works on rows, not runs). */
export function sortLines(lines: Line[], sort: Sort | null): Line[] {
  if (!sort) {
    return lines;
  }
  const sign = sort.descending ? -1 : 1;
  const blocks: RowLine[][] = [];
  for (const ln of lines) {
    if (ln.kind !== 'row') {
      continue;
    }
    if (ln.first) {
      blocks.push([ln]);
    } else {
      blocks[blocks.length - 1].push(ln);
    }
  }
  return blocks
    .map((block, i) => ({ block, i }))
    .sort((x, y) => {
      const c = compareValues(
        sortValue(x.block[0].row, sort.column),
        sortValue(y.block[0].row, sort.column)
      );
      return c !== 0 ? sign * c : x.i - y.i;
    })
    .flatMap(x => x.block);
}

/**
 * Reading a saved comparison: check it is a payload this renderer can show (its shape
 * is kernel/rootfs_kernel/views/compare.schema.json, whose types are generated into
 * schema.ts), and upgrade the version-1 payloads older kernels saved.
 */

import type { ComparePayload, LegendEntry, Level, Row, Status, Values } from './schema';
import { MARKS, STATUSES } from './model';

export const MIME_TYPE = 'application/vnd.rootfs-kernel.compare+json';
export const VERSION = 2;

/** Thrown for data this renderer cannot show; the message is shown to the reader. */
export class PayloadError extends Error {}

type Json = { [k: string]: unknown };

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value of a plain JSON object, never one inherited from Object.prototype. */
export function get(obj: unknown, name: string): unknown {
  return isObject(obj) && Object.prototype.hasOwnProperty.call(obj, name)
    ? obj[name]
    : undefined;
}

function checkLevel(level: unknown, where: string): void {
  const rows = get(level, 'rows');
  if (!Array.isArray(rows)) {
    throw new PayloadError(`${where}: "rows" is not a list`);
  }
  if (!isObject(get(level, 'summary'))) {
    throw new PayloadError(`${where}: "summary" is missing`);
  }
  rows.forEach((row, i) => {
    const status = get(row, 'status');
    if (!STATUSES.includes(status as Status)) {
      throw new PayloadError(`${where}: row ${i} has an unknown status ${JSON.stringify(status)}`);
    }
    if (typeof get(row, 'key') !== 'string') {
      throw new PayloadError(`${where}: row ${i} has no key`);
    }
    for (const side of ['cell', 'host']) {
      const v = get(row, side);
      if (v !== undefined && !isObject(v)) {
        throw new PayloadError(`${where}: row ${i}'s ${side} values are not an object`);
      }
    }
    const kids = get(row, 'children');
    if (kids !== undefined) {
      checkLevel(kids, `${where}/${String(get(row, 'key'))}`);
    }
  });
}

/** Version 1 (kernels before the schema file): marks and both sides on every row,
 * differs as flags, per-side row notes, a [mark, text] legend, sides as names. */
function upgradeRows(rows: unknown[], oneSided: boolean): Row[] {
  return rows.map(r => {
    const status = get(r, 'status') as Status;
    const row: Row = { key: String(get(r, 'key') ?? ''), status };
    const cell = get(r, 'cell');
    const host = get(r, 'host');
    if (isObject(cell)) {
      row.cell = cell as Values;
    }
    if (isObject(host) && status !== 'same' && !oneSided) {
      row.host = host as Values;
    }
    const flags = get(r, 'differs');
    const differs = isObject(flags) ? Object.keys(flags).filter(k => flags[k] === true) : [];
    if (differs.length) {
      row.differs = differs;
    }
    const notes = get(r, 'notes');
    if (isObject(notes)) {
      const text = Object.entries(notes)
        .map(([side, why]) => `${side}: ${String(why)}`)
        .join('; ');
      if (text) {
        row.note = text;
      }
    }
    if (get(r, 'contents_differ') === true) {
      row.contents_differ = true;
    }
    const kids = get(r, 'children');
    if (kids !== undefined) {
      row.children = {
        rows: upgradeRows(get(kids, 'rows') as unknown[], oneSided),
        summary: get(kids, 'summary') as Level['summary']
      };
    }
    return row;
  });
}

export function upgradeV1(data: Json): ComparePayload {
  const sideNames = (get(data, 'sides') as unknown[]).map(String);
  const oneSided = sideNames.length === 1;
  const legend = get(data, 'legend');
  const byMark = new Map<string, Status>(
    (Object.keys(MARKS) as Status[]).map(s => [MARKS[s], s])
  );
  const entries: LegendEntry[] = Array.isArray(legend)
    ? legend
        .filter(e => Array.isArray(e) && byMark.has(String(e[0])))
        .map(e => ({ status: byMark.get(String(e[0]))!, mark: String(e[0]), text: String(e[1]) }))
    : [];
  const p = {
    ...data,
    version: VERSION,
    sides: sideNames.map(name => ({ name, label: name })),
    legend: entries,
    rows: upgradeRows(get(data, 'rows') as unknown[], oneSided)
  } as Json;
  return p as unknown as ComparePayload;
}

/**
 * The payload if this renderer can show it, else a PayloadError that says why (an
 * unknown version first: newer kernels may change the shape).
 */
export function checkPayload(data: unknown): ComparePayload {
  if (!isObject(data)) {
    throw new PayloadError('the comparison data is not a JSON object');
  }
  const version = get(data, 'version');
  if (version !== VERSION && version !== 1) {
    throw new PayloadError(
      `this comparison was saved with payload version ${JSON.stringify(version ?? null)}, ` +
        `but the installed rootfs-kernel renderer reads versions 1 and ${VERSION} only; ` +
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
  if (!Array.isArray(get(data, 'legend'))) {
    throw new PayloadError('"legend" must be a list');
  }
  checkLevel(data, 'payload');
  return version === 1 ? upgradeV1(data) : (data as unknown as ComparePayload);
}

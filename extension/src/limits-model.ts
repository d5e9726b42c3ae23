/**
 * The %show limits payload (application/vnd.rootfs-kernel.limits+json) without the DOM:
 * checking it, and the lines every view draws (views/limits.py limits_lines(), checked
 * against the same golden file, tests/fixtures/limits/limits.json). limits.ts draws it.
 */

import type { LimitsPayload } from './limits-schema';
import { PayloadError, get } from './payload';

export const LIMITS_MIME_TYPE = 'application/vnd.rootfs-kernel.limits+json';
export const LIMITS_VERSION = 1;
export const HEADINGS = ['limit', 'value', 'held by', 'used at most', 'measured by'];

/** The payload if this renderer can show it, else a PayloadError saying why. */
export function checkLimits(data: unknown): LimitsPayload {
  if (get(data, 'version') !== LIMITS_VERSION) {
    throw new PayloadError(
      `this limits view was saved with payload version ${JSON.stringify(get(data, 'version') ?? null)}, ` +
        `but the installed rootfs-kernel renderer reads version ${LIMITS_VERSION} only; install ` +
        'the rootfs-kernel release that wrote this notebook (or a newer one).'
    );
  }
  const rows = get(data, 'rows');
  if (!Array.isArray(rows) || !rows.every(r => typeof get(r, 'used_text') === 'string')) {
    throw new PayloadError('"rows" must list the limits, each with its figures in words');
  }
  if (typeof get(data, 'title') !== 'string') {
    throw new PayloadError('"title" is missing');
  }
  return data as LimitsPayload;
}

/** What ended the cell, refused forks, OOM kills and the note, one line each. */
export function endings(p: LimitsPayload): string[] {
  const out: string[] = [];
  const ended = p.ended_by ?? '';
  if (p.ended_by) {
    out.push(`ended: ${p.ended_by}`);
  }
  if (p.forks_refused && !ended.includes('pids')) {
    out.push(`refused: ${p.forks_refused} fork(s) at the pids limit`);
  }
  if (p.oom_kills && !ended.includes('memory')) {
    out.push(`OOM kills: ${p.oom_kills}`);
  }
  if (p.note) {
    out.push(`note: ${p.note}`);
  }
  return out;
}

/** The view as lines of text: the title, the table's rows, the endings. */
export function limitsLines(p: LimitsPayload): string[] {
  const cells = [
    HEADINGS,
    ...p.rows.map(r => [r.key, r.limit_text, r.by, r.used_text, r.used_by])
  ];
  const widths = HEADINGS.slice(0, -1).map((_, i) => Math.max(...cells.map(c => c[i].length)));
  const lines = [p.title];
  for (const c of cells) {
    lines.push([...widths.map((w, i) => c[i].padEnd(w)), c[c.length - 1]].join('  '));
  }
  return [...lines, ...endings(p)];
}

/**
 * The renderer's view model against the golden payloads the kernel's tests use too
 * (tests/fixtures/payloads/*.json, written by make.py there): the same title, headline,
 * summary, legend, note, footer and lines, so the two renderers cannot disagree.
 * Run by `npm test` (node --test, no browser).
 */

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

import { draw, lineText, neighbours, pieces, sortLines, twoSided } from '../src/model';
import { PayloadError, checkPayload } from '../src/payload';
import { checkLimits, limitsLines } from '../src/limits-model';
import { checkTree, mountDetails } from '../src/tree-model';

const GOLDEN = resolve(__dirname, '..', '..', '..', 'tests', 'fixtures', 'payloads');
const files = readdirSync(GOLDEN).filter(f => f.endsWith('.json')).sort();

interface GoldenView {
  state: {
    path: string[];
    query: string;
    differences_only: boolean;
    expanded: boolean;
    more_columns: boolean;
  };
  title: string;
  headline: string | null;
  summary: string;
  legend: string;
  note: string | null;
  empty: string | null;
  footer: { text: string; action: string } | null;
  lines: string[];
}

test('there are golden payloads to check', () => {
  assert.ok(files.length >= 5, `found ${files.length} in ${GOLDEN}`);
});

for (const file of files) {
  const golden = JSON.parse(readFileSync(join(GOLDEN, file), 'utf8'));
  test(`golden ${file}`, () => {
    const p = checkPayload(golden.payload);
    golden.views.forEach((v: GoldenView, i: number) => {
      const d = draw(p, {
        path: v.state.path,
        query: v.state.query,
        differencesOnly: v.state.differences_only,
        expanded: v.state.expanded,
        moreColumns: v.state.more_columns
      });
      const got = {
        title: d.title,
        headline: d.headline,
        summary: d.summary,
        legend: d.legend,
        note: d.note,
        empty: d.empty,
        footer: d.footer,
        lines: d.lines.map(ln => lineText(ln, twoSided(p)))
      };
      const { state: _state, ...want } = v;
      void _state;
      assert.deepEqual(got, want, `${file}, view ${i}`);
    });
  });
}

test('an unknown version is refused with a message that says what to do', () => {
  const golden = JSON.parse(readFileSync(join(GOLDEN, 'ns.json'), 'utf8'));
  assert.throws(
    () => checkPayload({ ...golden.payload, version: 3 }),
    (e: unknown) => e instanceof PayloadError && /version 3/.test(e.message) && /install/.test(e.message)
  );
  assert.throws(() => checkPayload([]), PayloadError);
  assert.throws(
    () => checkPayload({ ...golden.payload, rows: [{ key: 'x', status: 'gone' }] }),
    PayloadError
  );
});

test('sorting keeps the two lines of a differing row together', () => {
  const golden = JSON.parse(readFileSync(join(GOLDEN, 'ns.json'), 'utf8'));
  const p = checkPayload(golden.payload);
  const d = draw(p, { path: [], query: '', differencesOnly: false, expanded: false, moreColumns: false });
  const sorted = sortLines(d.lines, { column: { kind: 'key' }, descending: true });
  const keys = sorted.filter(ln => ln.kind === 'row' && ln.first).map(ln => ln.kind === 'row' ? ln.row.key : '');
  assert.deepEqual(keys, [...keys].sort().reverse());
  sorted.forEach((ln, i) => {
    if (ln.kind === 'row' && !ln.first) {
      const prev = sorted[i - 1];
      assert.ok(prev.kind === 'row' && prev.row === ln.row);
    }
  });
});

test('the mount tree: every mount in words, as the kernel says it (tests/fixtures/tree/)', () => {
  const golden = JSON.parse(
    readFileSync(resolve(GOLDEN, '..', 'tree', 'tree.json'), 'utf8')
  );
  const p = checkTree(golden.payload);
  const details = golden.details as Record<string, string>;
  assert.ok(Object.keys(details).length > 10);
  for (const [id, text] of Object.entries(details)) {
    assert.equal(mountDetails(p, id), text, id);
  }
  assert.throws(() => checkTree({ ...golden.payload, version: 2 }), PayloadError);
});

test('%show limits: the same lines as the kernel draws (tests/fixtures/limits/)', () => {
  const golden = JSON.parse(
    readFileSync(resolve(GOLDEN, '..', 'limits', 'limits.json'), 'utf8')
  ) as Record<string, { payload: unknown; lines: string[] }>;
  assert.ok(Object.keys(golden).length >= 3);
  for (const [name, { payload, lines }] of Object.entries(golden)) {
    assert.deepEqual(limitsLines(checkLimits(payload)), lines, name);
  }
  const any = Object.values(golden)[0].payload as object;
  assert.throws(() => checkLimits({ ...any, version: 2 }), PayloadError);
  assert.throws(() => checkLimits({ ...any, rows: 'x' }), PayloadError);
});

test('%show steps: step through the opened step, as the kernel widget does', () => {
  const golden = JSON.parse(readFileSync(join(GOLDEN, 'steps.json'), 'utf8'));
  const p = checkPayload(golden.payload);
  const keys = p.rows.map(r => r.key);
  assert.deepEqual(neighbours(p, []), [null, null]);
  assert.deepEqual(neighbours(p, [keys[0]]), [null, keys[1]]);
  assert.deepEqual(neighbours(p, [keys[4]]), [keys[3], keys[5]]);
  assert.deepEqual(neighbours(p, [keys[keys.length - 1]]), [keys[keys.length - 2], null]);
  const layers = checkPayload(JSON.parse(readFileSync(join(GOLDEN, 'layers.json'), 'utf8')).payload);
  assert.deepEqual(neighbours(layers, ['layer 1']), [null, null]);
});

test('values are cut where they may wrap as the kernel cuts them (tests/fixtures/pieces.json)', () => {
  const golden = JSON.parse(readFileSync(resolve(GOLDEN, '..', 'pieces.json'), 'utf8'));
  golden.texts.forEach((text: string, i: number) => {
    assert.deepEqual(pieces(text), golden.pieces[i], text);
  });
});

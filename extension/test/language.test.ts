/**
 * Which cells the editor highlights as C: the kernel's own rule (cell.py: a first line
 * `%%c` or `%%c FLAGS`), nothing looser.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { C_MIME, cellLanguage } from '../src/language';

test('a first line %%c, with or without gcc flags, makes the cell C', () => {
  assert.equal(cellLanguage('%%c\nint main(void) { return 0; }'), C_MIME);
  assert.equal(cellLanguage('  %%c -O2 -Wall\n%root chroot\nint x;'), C_MIME);
  assert.equal(cellLanguage('%%c'), C_MIME);
});

test('every other cell keeps the notebook language', () => {
  for (const text of ['', 'true', '%%host\nls', '%%cat\nx', '%mount tmpfs /tmp\n%%c', '# %%c']) {
    assert.equal(cellLanguage(text), null, text);
  }
});

/**
 * The %show limits renderer: a table of the cell's limits, what held each one (a cgroup
 * file, an rlimit, the tmpfs size) and what the cell used at most, with a bar of the peak
 * against its limit (the error colour once it reached 95%), then what ended the cell.
 * Text only through textContent: nothing from the notebook becomes markup.
 */

import type { LimitsPayload } from './limits-schema';
import { HEADINGS, endings } from './limits-model';

export { LIMITS_MIME_TYPE, checkLimits } from './limits-model';

export class LimitsView {
  readonly node: HTMLDivElement;

  constructor(payload: LimitsPayload) {
    this.node = document.createElement('div');
    this.node.className = 'rfk-compare rfk-limits';
    const title = document.createElement('div');
    title.className = 'rfk-title';
    title.textContent = payload.title;
    const table = document.createElement('table');
    table.className = 'rfk-table rfk-limits-table';
    const head = table.createTHead().insertRow();
    for (const h of HEADINGS) {
      const th = document.createElement('th');
      th.textContent = h;
      head.append(th);
    }
    const body = table.createTBody();
    for (const r of payload.rows) {
      const tr = body.insertRow();
      tr.dataset.key = r.key;
      [r.key, r.limit_text, r.by, r.used_text, r.used_by].forEach((text, i) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (i === 3 && r.fraction !== null) {
          const bar = document.createElement('div');
          bar.className = 'rfk-limits-bar';
          bar.title = `${Math.round(r.fraction * 100)}%`;
          const fill = document.createElement('div');
          fill.className = r.fraction >= 0.95 ? 'rfk-limits-fill rfk-limits-reached' : 'rfk-limits-fill';
          fill.style.width = `${(r.fraction * 100).toFixed(1)}%`;
          bar.append(fill);
          td.append(bar);
        }
      });
    }
    this.node.append(title, table);
    for (const line of endings(payload)) {
      const div = document.createElement('div');
      div.className = 'rfk-limits-ending';
      div.textContent = line;
      this.node.append(div);
    }
  }
}

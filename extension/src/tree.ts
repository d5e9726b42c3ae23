/**
 * The %show tree renderer: Graphviz's picture of the cell's and the host's mount trees in
 * the theme's colours, a mount picker (or a click on a mount) that says what the mount is
 * and what it propagates to and from, and the findmnt-style text. The SVG from the
 * notebook is rebuilt element by element from a short list of drawing elements and
 * attributes: no script, link or style survives.
 */

import type { TreePayload } from './tree-schema';
import { COLOURS, mountDetails } from './tree-model';

export { TREE_MIME_TYPE, checkTree } from './tree-model';

const SVG_NS = 'http://www.w3.org/2000/svg';
const ELEMENTS = new Set(['svg', 'g', 'title', 'polygon', 'path', 'ellipse', 'text', 'polyline']);
const ATTRIBUTES = new Set([
  'viewBox', 'width', 'height', 'transform', 'points', 'd', 'cx', 'cy', 'rx', 'ry', 'x', 'y',
  'text-anchor', 'font-family', 'font-size', 'font-weight', 'font-style', 'stroke-width',
  'stroke-dasharray', 'class', 'id', 'fill', 'stroke'
]);

/** Graphviz's SVG rebuilt from drawing elements only, coloured with theme variables. */
export function safeSvg(markup: string): SVGSVGElement | null {
  const parsed = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const root = parsed.documentElement;
  if (!root || root.localName !== 'svg' || parsed.getElementsByTagName('parsererror').length) {
    return null;
  }
  const copy = (from: Element, into: Element | null): Element | null => {
    let target = into;
    if (ELEMENTS.has(from.localName)) {
      const el = document.createElementNS(SVG_NS, from.localName);
      for (const attr of Array.from(from.attributes)) {
        if (!ATTRIBUTES.has(attr.name)) {
          continue;
        }
        const colour = COLOURS[attr.value.toLowerCase()];
        if ((attr.name === 'fill' || attr.name === 'stroke') && colour) {
          el.style.setProperty(attr.name, `var(${colour[0]}, ${colour[1]})`);
        } else {
          el.setAttribute(attr.name, attr.value);
        }
      }
      into?.append(el);
      target = el;
    } else if (from.localName !== 'a') {
      return null; // <style>, <script>, <foreignObject>...: dropped with what is inside
    }
    for (const child of Array.from(from.childNodes)) {
      if (child.nodeType === 3 && target && target.localName !== 'svg') {
        target.append(document.createTextNode(child.textContent ?? ''));
      } else if (child.nodeType === 1) {
        copy(child as Element, target);
      }
    }
    return target;
  };
  return copy(root, null) as SVGSVGElement | null;
}

export class TreeView {
  readonly node: HTMLDivElement;
  private readonly details: HTMLDivElement;
  private readonly picker: HTMLSelectElement;

  constructor(private readonly payload: TreePayload) {
    this.node = document.createElement('div');
    this.node.className = 'rfk-compare rfk-tree';
    const title = document.createElement('div');
    title.className = 'rfk-title';
    title.textContent = payload.title;
    this.picker = document.createElement('select');
    this.picker.className = 'jp-mod-styled rfk-tree-picker';
    this.picker.setAttribute('aria-label', 'Pick a mount');
    this.picker.append(new Option('pick a mount…', ''));
    for (const side of payload.sides) {
      for (const n of side.nodes) {
        this.picker.append(new Option(`${side.label} ${n.mount_point} (${n.propagation})`, n.id));
      }
    }
    this.picker.addEventListener('change', () => this.pick(this.picker.value));
    this.details = document.createElement('div');
    this.details.className = 'rfk-tree-details';
    this.node.append(title, this.picker, this.details);
    const svg = payload.svg ? safeSvg(payload.svg) : null;
    if (svg) {
      const box = document.createElement('div');
      box.className = 'rfk-scroll rfk-tree-picture';
      box.append(svg);
      svg.addEventListener('click', event => {
        const g = (event.target as Element).closest('g.node');
        const id = g?.querySelector('title')?.textContent ?? '';
        if (id && !id.startsWith('group:')) {
          this.pick(id);
        }
      });
      this.node.append(box);
    }
    const text = document.createElement('details');
    text.open = !svg;
    const summary = document.createElement('summary');
    summary.textContent = 'as text (findmnt --tree)';
    const pre = document.createElement('pre');
    pre.className = 'rfk-tree-text';
    pre.textContent = payload.text;
    text.append(summary, pre);
    this.node.append(text);
    if (payload.note) {
      const note = document.createElement('div');
      note.className = 'rfk-note';
      note.textContent = `note: ${payload.note}`;
      this.node.append(note);
    }
  }

  pick(id: string): void {
    this.picker.value = id;
    this.details.textContent = id ? mountDetails(this.payload, id) : '';
    this.node.querySelectorAll('g.node.rfk-picked').forEach(g => g.classList.remove('rfk-picked'));
    this.node.querySelectorAll('g.node').forEach(g => {
      if (id && g.querySelector('title')?.textContent === id) {
        g.classList.add('rfk-picked');
      }
    });
  }
}

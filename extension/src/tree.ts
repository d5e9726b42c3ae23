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

/** The picture's own width in CSS pixels (Graphviz writes points), from its viewBox. */
function naturalWidth(svg: SVGSVGElement): number {
  const box = (svg.getAttribute('viewBox') ?? '').split(/[\s,]+/).map(Number);
  const pt = box.length === 4 && box[2] > 0 ? box[2] : parseFloat(svg.getAttribute('width') ?? '');
  return pt > 0 ? (pt * 4) / 3 : 0;
}

const ZOOM_STEP = 1.25;

/**
 * The picture fits the output area's width at first (the cell's tree on top), then
 * zooms with the buttons (fit width, 100 %, - and +) and pans by dragging or scrolling.
 */
export class TreeView {
  readonly node: HTMLDivElement;
  private readonly details: HTMLDivElement;
  private readonly picker: HTMLSelectElement;
  private readonly box: HTMLDivElement | null = null;
  private readonly svg: SVGSVGElement | null = null;
  private readonly scaleLabel: HTMLSpanElement;
  private natural = 0;
  private scale = 1;
  private fit = true;

  constructor(private readonly payload: TreePayload) {
    this.node = document.createElement('div');
    this.node.className = 'rfk-compare rfk-static rfk-tree';
    const heading = document.createElement('div');
    heading.className = 'rfk-heading';
    const title = document.createElement('div');
    title.className = 'rfk-title';
    title.textContent = payload.title;
    heading.append(title);
    const tools = document.createElement('div');
    tools.className = 'rfk-tree-tools';
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
    tools.append(this.picker);
    this.scaleLabel = document.createElement('span');
    this.scaleLabel.className = 'rfk-zoom-scale';
    this.details = document.createElement('div');
    this.details.className = 'rfk-tree-details';
    this.node.append(heading, tools, this.details);
    const svg = payload.svg ? safeSvg(payload.svg) : null;
    if (svg) {
      this.svg = svg;
      this.natural = naturalWidth(svg);
      svg.removeAttribute('height');
      svg.style.height = 'auto';
      const zoom = (label: string, title: string, act: () => void): HTMLButtonElement => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'jp-mod-styled rfk-zoom';
        b.textContent = label;
        b.title = title;
        b.addEventListener('click', act);
        tools.append(b);
        return b;
      };
      zoom('fit width', 'the whole width of the picture in view', () => this.zoomTo(null));
      zoom('100%', 'the picture at its own size', () => this.zoomTo(1));
      zoom('−', 'zoom out', () => this.zoomTo(this.scale / ZOOM_STEP));
      zoom('+', 'zoom in', () => this.zoomTo(this.scale * ZOOM_STEP));
      tools.append(this.scaleLabel);
      const box = document.createElement('div');
      box.className = 'rfk-scroll rfk-picture';
      box.append(svg);
      this.box = box;
      this.pannable(box);
      svg.addEventListener('click', event => {
        const g = (event.target as Element).closest('g.node');
        const id = g?.querySelector('title')?.textContent ?? '';
        if (id && !id.startsWith('group:') && !box.classList.contains('rfk-dragged')) {
          this.pick(id);
        }
      });
      // Fit to the width the output area has, and again when it changes.
      new ResizeObserver(() => {
        if (this.fit) {
          this.zoomTo(null);
        }
      }).observe(box);
      this.node.append(box);
      this.zoomTo(null);
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

  /** scale null: fit the width of the box (never larger than the picture's own size). */
  zoomTo(scale: number | null): void {
    if (!this.svg || !this.box || !this.natural) {
      return;
    }
    this.fit = scale === null;
    if (scale === null) {
      const room = this.box.clientWidth;
      scale = room > 0 ? Math.min(1, room / this.natural) : 1;
    }
    this.scale = Math.min(4, Math.max(0.1, scale));
    this.svg.style.width = `${Math.round(this.natural * this.scale)}px`;
    this.scaleLabel.textContent = `${Math.round(this.scale * 100)}%`;
  }

  /** Drag the picture to pan it (a click without a drag still picks a mount). */
  private pannable(box: HTMLDivElement): void {
    let start: { x: number; y: number; left: number; top: number } | null = null;
    box.addEventListener('pointerdown', event => {
      if (event.button !== 0) {
        return;
      }
      start = { x: event.clientX, y: event.clientY, left: box.scrollLeft, top: box.scrollTop };
      box.classList.remove('rfk-dragged');
    });
    box.addEventListener('pointermove', event => {
      if (!start) {
        return;
      }
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) {
        box.classList.add('rfk-panning', 'rfk-dragged');
        box.scrollLeft = start.left - dx;
        box.scrollTop = start.top - dy;
      }
    });
    const stop = (): void => {
      start = null;
      box.classList.remove('rfk-panning');
    };
    box.addEventListener('pointerup', stop);
    box.addEventListener('pointerleave', stop);
  }

  pick(id: string): void {
    this.picker.value = this.picker.querySelector(`option[value="${CSS.escape(id)}"]`) ? id : '';
    this.details.textContent = id ? mountDetails(this.payload, id) : '';
    this.node.querySelectorAll('g.node.rfk-picked').forEach(g => g.classList.remove('rfk-picked'));
    this.node.querySelectorAll('g.node').forEach(g => {
      if (id && g.querySelector('title')?.textContent === id) {
        g.classList.add('rfk-picked');
      }
    });
  }
}

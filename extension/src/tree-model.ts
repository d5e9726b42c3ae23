/**
 * The %show tree payload (application/vnd.rootfs-kernel.tree+json) without the DOM:
 * checking it, and a mount in words (views/tree.py mount_details(), checked against the
 * same golden file). tree.ts draws it.
 */

import type { Link, Node, TreePayload } from './tree-schema';
import { PayloadError, get } from './payload';

export const TREE_MIME_TYPE = 'application/vnd.rootfs-kernel.tree+json';
export const TREE_VERSION = 1;

/** views/tree.py COLOURS: Graphviz's fixed colours -> [theme variable, light value]. */
export const COLOURS: Record<string, [string, string]> = {
  '#fffffe': ['--jp-layout-color0', '#ffffff'],
  '#1f2329': ['--jp-content-font-color1', '#1f2328'],
  '#8c959f': ['--jp-border-color1', '#8c959f'],
  '#0969da': ['--jp-brand-color1', '#0969da'],
  '#bc4c00': ['--jp-warn-color1', '#bc4c00'],
  '#f6f8fa': ['--jp-layout-color2', '#f6f8fa']
};

/** The payload if this renderer can show it, else a PayloadError saying why. */
export function checkTree(data: unknown): TreePayload {
  if (get(data, 'version') !== TREE_VERSION) {
    throw new PayloadError(
      `this mount tree was saved with payload version ${JSON.stringify(get(data, 'version') ?? null)}, ` +
        `but the installed rootfs-kernel renderer reads version ${TREE_VERSION} only; install ` +
        'the rootfs-kernel release that wrote this notebook (or a newer one).'
    );
  }
  const sides = get(data, 'sides');
  if (!Array.isArray(sides) || !sides.every(s => Array.isArray(get(s, 'nodes')))) {
    throw new PayloadError('"sides" must list the trees, each with its "nodes"');
  }
  if (!Array.isArray(get(data, 'links')) || typeof get(data, 'text') !== 'string') {
    throw new PayloadError('"links" and "text" are missing');
  }
  return data as TreePayload;
}

function labels(p: TreePayload): Map<string, string> {
  const out = new Map<string, string>();
  for (const g of p.hidden_groups) {
    out.set(`group:${g}`, `peer group ${g} (no mount of it is visible)`);
  }
  for (const side of p.sides) {
    for (const n of side.nodes) {
      out.set(n.id, `${side.label} ${n.mount_point}`);
    }
  }
  const sides = new Map(p.sides.map(s => [s.name, s.label]));
  for (const f of p.folds ?? []) {
    out.set(f.id, `${sides.get(f.side) ?? f.side} ${f.label}`);
  }
  return out;
}

/** One mount in words: views/tree.py mount_details(). */
export function mountDetails(p: TreePayload, id: string): string {
  const names = labels(p);
  const fold = (p.folds ?? []).find(f => f.id === id);
  if (fold) {
    return `${names.get(id)}: ${fold.text}`; // a folded run of alike mounts: one node
  }
  const node: Node | undefined = p.sides.flatMap(s => s.nodes).find(n => n.id === id);
  if (!node) {
    return '';
  }
  const name = (other: string): string => names.get(other) ?? other;
  const parts = [
    `${name(id)}: ${node.fstype} from ${node.source} (${node.options}), ${node.propagation}`
  ];
  p.links.forEach((link: Link) => {
    if (link.kind === 'peer' && (link.from === id || link.to === id)) {
      parts.push(`peer of ${name(link.from === id ? link.to : link.from)} (shared:${link.group})`);
    } else if (link.kind === 'master' && link.to === id) {
      parts.push(`slave of ${name(link.from)} (master:${link.group})`);
    } else if (link.kind === 'master' && link.from === id) {
      parts.push(`master of ${name(link.to)}`);
    }
  });
  return parts.join('; ');
}


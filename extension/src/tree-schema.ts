/* Generated from kernel/rootfs_kernel/views/tree.schema.json by
   scripts/schema-types.mjs (npm run schema); do not edit by hand. */

/**
 * %show tree: the data of application/vnd.rootfs-kernel.tree+json, version 1. A picture, not a table, so not a compare payload: the cell's and the host's mount trees as nodes under their parents, the propagation links between them (peer groups and master/slave, which cross the two namespaces), Graphviz's SVG of both and a findmnt --tree-style text. The kernel writes it (kernel/rootfs_kernel/views/tree.py); the JupyterLab renderer (extension/src/tree.ts) shows the SVG in the theme's colours and a picked mount in words.
 */
export interface TreePayload {
  version: 1;
  kind: 'tree';
  title: string;
  /**
   * @minItems 1
   * @maxItems 2
   */
  sides: [Side] | [Side, Side];
  links: Link[];
  /**
   * Peer groups a slave receives from that have no mount in either tree; drawn as nodes 'group:N'.
   */
  hidden_groups: number[];
  /**
   * Runs of alike sibling leaves (the cgroup fan-out) drawn as one node 'fold:SIDE:N', as the tables fold them; absent in payloads of older kernels.
   */
  folds?: Fold[];
  /**
   * Graphviz's picture (null without Graphviz). Its fill and stroke colours are the fixed values of views/tree.py COLOURS, which renderers map to theme colours; nodes and edges carry the classes rfk-mount, rfk-shared, rfk-slave, rfk-parent, rfk-peer, rfk-master.
   */
  svg: string | null;
  /**
   * The same trees as text (findmnt --tree), then the propagation links.
   */
  text: string;
  note: string | null;
}
export interface Side {
  name: 'cell' | 'host';
  label: string;
  /**
   * Depth first, children sorted by mount point.
   */
  nodes: Node[];
  /**
   * Mounts not drawn (past the first 150, breadth first).
   */
  left_out: number;
}
export interface Node {
  /**
   * side:mount_id
   */
  id: string;
  mount_id: number;
  /**
   * The parent's mount id; null for a root of this tree.
   */
  parent: number | null;
  depth: number;
  mount_point: string;
  fstype: string;
  source: string;
  options: string;
  root: string;
  /**
   * shared:N master:N propagate_from:N unbindable, or private
   */
  propagation: string;
  shared: number | null;
  master: number | null;
  propagate_from: number | null;
}
export interface Link {
  /**
   * peer: two members of one peer group; master: from a member of the group (or 'group:N') to its slave.
   */
  kind: 'peer' | 'master';
  group: number;
  from: string;
  to: string;
}
export interface Fold {
  id: string;
  side: 'cell' | 'host';
  /**
   * The id of the mount they sit on.
   */
  parent: string;
  /**
   * @minItems 2
   */
  members: [string, string, ...string[]];
  label: string;
  text: string;
}

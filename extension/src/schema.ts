/* Generated from kernel/rootfs_kernel/views/compare.schema.json by
   scripts/schema-types.mjs (npm run schema); do not edit by hand. */

/**
 * One %show comparison: the data of application/vnd.rootfs-kernel.compare+json, version 2. The kernel writes it (kernel/rootfs_kernel/views/payload.py); the kernel's HTML, text and widget and the JupyterLab renderer (extension/src/) all render it through the same view model (views/model.py, extension/src/model.ts), checked by the golden fixtures in tests/fixtures/payloads/. A new view kind is one entry in $defs.kinds (its value columns) plus one line in allOf.
 */
export type ComparePayload = {
  [k: string]: unknown;
} & {
  /**
   * Bumped whenever the shape changes. Version 1 payloads (saved by older kernels) are upgraded by the renderer.
   */
  version: 2;
  /**
   * The key, value columns and legend of every row's children that do not have their own (%show steps: each step's mount changes): said once, not on every row.
   */
  level?: {
    key?: Column;
    columns?: Column[];
    /**
     * @minItems 1
     */
    legend?: [LegendEntry, ...LegendEntry[]];
  };
  kind: Kind;
  title: string;
  /**
   * One line that says what the cell did, above the table (mounts).
   */
  headline?: string | null;
  /**
   * Short names the rows use for long paths, said once in the heading as 'NAME = value' (%show steps: $CELL, the container's directory).
   */
  names?: {
    [k: string]: string;
  };
  /**
   * Runs of top-level rows under a heading of their own (%show steps: the process that took them).
   */
  sections?: Section[];
  /**
   * The key of the top-level row the view opens on (%show layers: the cell's own layer, as dive shows it).
   */
  selected?: string;
  /**
   * The cell first; the second is what it is compared with (the host, or the image before the cell). One side: a one-sided view (changes).
   *
   * @minItems 1
   * @maxItems 2
   */
  sides: [Side] | [Side, Side];
  key: Column;
  columns: Column[];
  /**
   * @minItems 1
   */
  legend: [LegendEntry, ...LegendEntry[]];
  rows: Row[];
  summary: Summary;
  groups?: Group[];
  /**
   * A snapshot was cut (budget or depth).
   */
  truncated: boolean;
  /**
   * Why and where it was cut, shown under the table.
   */
  note: string | null;
  notes?: SideTexts;
  /**
   * Listings: the directory listed on each side (host null when the other side is the image).
   */
  paths?: {
    cell?: string | null;
    host?: string | null;
  };
};
export type Status = 'same' | 'only-cell' | 'only-host' | 'differs';
export type Kind = 'mounts' | 'listing' | 'changes' | 'ns' | 'layers' | 'steps' | 'steps-vs';
export type Value = string | number | null;

export interface Column {
  name: string;
  label: string;
  /**
   * The value is a list joined by this separator: only the parts that differ are highlighted, and long values wrap after it.
   */
  split?: string;
  /**
   * Shown behind the 'more columns' switch (a reader needs it second: a mount's super options and root).
   */
  more?: true;
  /**
   * Each row's 'bar' is drawn in this column (%show steps: the step's time on the setup's timeline).
   */
  bar?: true;
}
export interface LegendEntry {
  status: Status;
  mark: string;
  text: string;
}
/**
 * rows[start : start + count] under the heading 'text'.
 */
export interface Section {
  start: number;
  count: number;
  label: string;
  text: string;
}
export interface Side {
  name: 'cell' | 'host';
  label: string;
}
/**
 * cell: the cell's values (absent when only on the other side). host: the other side's (absent when only in the cell, and for 'same' rows, whose values are the cell's). differs: the columns whose values differ.
 */
export interface Row {
  key: string;
  status: Status;
  cell?: Values;
  host?: Values;
  differs?: string[];
  /**
   * Why, in words: what differs inside a directory, a covered mount, a side not read.
   */
  note?: string;
  contents_differ?: true;
  /**
   * [start, length] in thousandths of a timeline, drawn in the column marked 'bar' (%show steps: the setup's time).
   *
   * @minItems 2
   * @maxItems 2
   */
  bar?: [number, number];
  children?: Level;
}
/**
 * Column name -> value.
 */
export interface Values {
  [k: string]: Value;
}
export interface Level {
  /**
   * This level's legend when it is not the payload's (a step's mount changes, a layer's entries).
   *
   * @minItems 1
   */
  legend?: [LegendEntry, ...LegendEntry[]];
  /**
   * The keys are absolute paths, drawn as a file tree: each by its name below the nearest listed ancestor, indented.
   */
  tree?: true;
  key?: Column1;
  /**
   * This level's value columns when they are not the payload's.
   */
  columns?: Column[];
  rows: Row[];
  summary: Summary;
  groups?: Group[];
}
/**
 * This level's key column when it is not the payload's (layers: a layer's paths).
 */
export interface Column1 {
  name: string;
  label: string;
  /**
   * The value is a list joined by this separator: only the parts that differ are highlighted, and long values wrap after it.
   */
  split?: string;
  /**
   * Shown behind the 'more columns' switch (a reader needs it second: a mount's super options and root).
   */
  more?: true;
  /**
   * Each row's 'bar' is drawn in this column (%show steps: the step's time on the setup's timeline).
   */
  bar?: true;
}
export interface Summary {
  same: number;
  'only-cell': number;
  'only-host': number;
  differs: number;
  total: number;
}
/**
 * A run of sibling rows that differ the same way: rows[start : start + count], folded into one line while the table is collapsed.
 */
export interface Group {
  start: number;
  count: number;
  label: string;
  text: string;
}
export interface SideTexts {
  cell?: string;
  host?: string;
}

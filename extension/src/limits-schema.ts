/* Generated from kernel/rootfs_kernel/views/limits.schema.json by
   scripts/schema-types.mjs (npm run schema); do not edit by hand. */

/**
 * %show limits: the data of application/vnd.rootfs-kernel.limits+json, version 1. Figures, not a comparison: each limit of the cell (memory, pids, cpu, disk), what held it (a cgroup file, an rlimit, the size of the tmpfs under the writable layer, or nothing) and what the cell used at most, as numbers and in words. The kernel writes it (kernel/rootfs_kernel/views/limits.py); the JupyterLab renderer (extension/src/limits.ts) draws the same lines (limitsLines) with a bar per peak.
 */
export interface LimitsPayload {
  version: 1;
  kind: 'limits';
  title: string;
  /**
   * What held the cell's limits: its cgroup (of which version), setrlimit where no cgroup could be made, or neither (no limit but the disk's).
   */
  mechanism: 'cgroup v1' | 'cgroup v2' | 'setrlimit' | 'no cgroup';
  /**
   * The cell's cgroup directories (v1: one per controller); empty without a cgroup.
   */
  cgroup: string[];
  /**
   * memory, pids, cpu, disk, in that order.
   *
   * @minItems 4
   * @maxItems 4
   */
  rows: [Row, Row, Row, Row];
  /**
   * pids.events max: forks the pids limit refused.
   */
  forks_refused: number;
  /**
   * memory.events oom_kill: processes the memory limit ended.
   */
  oom_kills: number;
  /**
   * The limit that ended (part of) the cell, in the kernel's words.
   */
  ended_by: string | null;
  /**
   * Why no cgroup could be made, where none was.
   */
  note: string | null;
}
export interface Row {
  key: 'memory' | 'pids' | 'cpu' | 'disk';
  /**
   * Bytes (memory, disk), processes (pids) or a share of one CPU (cpu); null: none.
   */
  limit: number | null;
  limit_text: string;
  /**
   * What held it: e.g. 'cgroup v2 memory.max', 'RLIMIT_NPROC', 'tmpfs size'; '-' for no limit.
   */
  by: string;
  /**
   * The peak: bytes, processes, or CPU seconds; null where nothing counted it.
   */
  used: number | null;
  used_text: string;
  /**
   * What measured it: e.g. 'memory.peak', 'pids.peak', 'cpu.stat usage_usec', or why nothing did.
   */
  used_by: string;
  /**
   * used / limit (not for cpu, whose limit is a rate); null without both.
   */
  fraction: number | null;
}

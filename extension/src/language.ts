/** The MIME type of C, which JupyterLab's editor highlights as C. */
export const C_MIME = 'text/x-csrc';

/**
 * The language of a rootfs cell's text, as the kernel reads it (kernel/rootfs_kernel/
 * cell.py): C after a first line `%%c [FLAGS]`, else null (the notebook's own: shell).
 */
export function cellLanguage(source: string): string | null {
  const first = source.split('\n', 1)[0].trim();
  return first === '%%c' || first.startsWith('%%c ') ? C_MIME : null;
}

// The one table writer of the studies: rows of cells → a Markdown table
// (`| a | b |`, for report.md and the printed reports) or a plain one (columns
// two spaces apart under a dashed rule, for terminals and logs).
//
//   table(['optimizer', 'lr'], [['SING', '0.01']])                    Markdown
//   table(head, rows, { style: 'plain', align: 'right', number: fmt }) plain, right-aligned
//
// Numbers, null and booleans are written by `number` (default String) and
// String; every column is as wide as its widest cell.

export type Cell = string | number | boolean | null;

export interface TableOptions {
  /** 'markdown' (default) or 'plain' */
  style?: 'markdown' | 'plain';
  /** padding of the cells (default 'left': text starts at the column's left edge) */
  align?: 'left' | 'right';
  /** how a number or null cell prints (default String) */
  number?: (v: number | null) => string;
}

export function table(head: readonly string[], rows: readonly (readonly Cell[])[], options: TableOptions = {}): string {
  const number = options.number ?? String;
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' || c === null ? number(c) : String(c))));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const pad = (c: string, i: number): string => (options.align === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i]));
  const rule = widths.map((w) => '-'.repeat(w));
  if (options.style === 'plain') {
    const line = (r: readonly string[]): string => r.map(pad).join('  ').trimEnd();
    return [line(head), line(rule), ...cells.map(line)].join('\n');
  }
  const line = (r: readonly string[]): string => `| ${r.map(pad).join(' | ')} |`;
  return [line(head), `| ${rule.join(' | ')} |`, ...cells.map(line)].join('\n');
}

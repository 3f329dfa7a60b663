/** Plain-text tables for people: columns padded to their widest cell, a header row first. */

/** Aligns `rows` (the first one the header) into lines, two spaces between columns, no trailing blanks. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()).join("\n");
}

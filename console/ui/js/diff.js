// A line diff (longest common subsequence) between two texts, as a list
// of {op: ' ' | '-' | '+', line}. Texts beyond maxLines a side are
// compared by their first maxLines only (the quadratic table stays small).

const maxLines = 2000;

export function diffLines(a, b) {
  const x = a.split('\n').slice(0, maxLines);
  const y = b.split('\n').slice(0, maxLines);
  const n = x.length, m = y.length;
  // lcs[i][j]: the longest common subsequence of x[i:] and y[j:].
  const lcs = Array.from({length: n + 1}, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({op: ' ', line: x[i]}); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({op: '-', line: x[i++]});
    else out.push({op: '+', line: y[j++]});
  }
  while (i < n) out.push({op: '-', line: x[i++]});
  while (j < m) out.push({op: '+', line: y[j++]});
  return out;
}

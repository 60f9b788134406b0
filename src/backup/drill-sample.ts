/** `l2backup drill --sample`, parsed when the command line is read (kept apart from the drill's code). */
import { UsageError } from '../errors.js';

/** `--sample`: a fraction (0.1) or a percentage (10%), more than 0 and at most 1 (100%). */
export function parseSample(raw: string): number {
  const text = raw.trim();
  const pct = text.endsWith('%');
  const n = Number(pct ? text.slice(0, -1) : text);
  const f = pct ? n / 100 : n;
  if (text === '' || text === '%' || !Number.isFinite(f) || f <= 0 || f > 1) {
    throw new UsageError(`--sample ${JSON.stringify(raw.slice(0, 40))} is not a share of the files: give a fraction above 0 and at most 1 (0.1) or a percentage (10%)`);
  }
  return f;
}

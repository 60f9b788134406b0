/** A small L2 Dash data tree: models, logs, reports, configs. */
import { mkdirSync, writeFileSync, symlinkSync, readFileSync, renameSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export function makeTree(dir: string): { data: string; sources: string } {
  const data = join(dir, 'data');
  for (const s of ['models/artifacts', 'logs/2025/10', 'reports', 'configs/guardrails']) mkdirSync(join(data, s), { recursive: true });
  writeFileSync(join(data, 'models/model.bin'), randomBytes(300_000));
  writeFileSync(join(data, 'models/artifacts/scaler.pkl'), randomBytes(2_000));
  writeFileSync(join(data, 'models/empty.txt'), '');
  symlinkSync('model.bin', join(data, 'models/current'));
  for (let i = 0; i < 20; i++) writeFileSync(join(data, `logs/2025/10/fills-${i}.log`), `fill ${i}\n`.repeat(50));
  writeFileSync(join(data, 'logs/guardrails.log'), 'guardrail ok\n');
  writeFileSync(join(data, 'reports/daily.csv'), 'date,pnl\n2025-10-03,12.5\n');
  writeFileSync(join(data, 'reports/name with spaces & ü.txt'), 'unicode\n');
  writeFileSync(join(data, 'configs/guardrails/limits.yaml'), 'max_position: 10\n');
  writeFileSync(join(data, 'configs/settings.json'), '{"mode":"paper"}\n');
  const sources = ['models', 'logs', 'reports', 'configs'].map((s) => `${s}=${join(data, s)}`).join(',');
  return { data, sources };
}

/** Re-labels a complete snapshot as an older one (folder name, manifest id and recorded times). */
export function ageSnapshot(root: string, id: string, olderId: string): void {
  renameSync(join(root, id), join(root, olderId));
  const mf = join(root, olderId, '.l2-manifest.json');
  const m = JSON.parse(readFileSync(mf, 'utf8'));
  const shift = idMs(olderId) - idMs(/^\d{8}-\d{6}$/.test(id) ? id : m.id);
  m.id = olderId;
  m.startedAt = new Date(Date.parse(m.startedAt) + shift).toISOString();
  m.finishedAt = new Date(Date.parse(m.finishedAt) + shift).toISOString();
  writeFileSync(mf, JSON.stringify(m));
}

/** The UTC time a snapshot id names, in ms. */
export function idMs(id: string): number {
  const [, y, mo, d, h, mi, s] = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/.exec(id)!.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
}

export function idDaysAgo(days: number, seconds = 0): string {
  const iso = new Date(Date.now() - days * 86_400_000 - seconds * 1000).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

/** Complete-looking snapshot folders in a backups root (the names `ls` shows), oldest first. */
export function snapshots(root: string): string[] {
  return readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort();
}

/**
 * `l2alert buffer-status` reads its state synchronously (readStateSync, readJsonStateSync): the
 * same refusals and reports as the asynchronous readers. Odd things where state belongs: a FIFO
 * (an open that blocked would hang the command), a folder, a symlink, a corrupt file, an
 * unreadable spill. Expected lines are those of the build before the change, run on the same tree.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';

test('a FIFO as the buffer, a folder as the dead-letter file and a corrupt delivery state: reported, set aside, exit 0', async () => {
  const sb = sandbox();
  const l2 = join(sb.root, '.l2');
  mkdirSync(l2);
  execFileSync('mkfifo', [join(l2, 'alerts_buffer.jsonl')]);
  mkdirSync(join(l2, 'alerts_buffer.jsonl.dead'));
  writeFileSync(join(l2, 'alert-delivery.json'), '{bad');
  const res = await run('l2alert', ['buffer-status', '--json'], sb.env, { timeout: 120_000 });
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toContain(`alert buffer ${l2}/alerts_buffer.jsonl is unreadable (state file ${l2}/alerts_buffer.jsonl is not a regular file; move it away (l2ops recreates it))`);
  expect(res.stderr).toMatch(new RegExp(`state file ${l2}/alert-delivery\\.json was corrupt; moved aside to ${l2}/alert-delivery\\.json\\.corrupt-\\S+ and starting fresh`));
  expect(JSON.parse(res.stdout)).toMatchObject({ count: 0, sizeBytes: 0, spilled: 0, deadLetters: 0, droppedTotal: 0 });
  expect(existsSync(join(l2, 'alert-delivery.json'))).toBe(false);
  expect(readdirSync(l2).filter((n) => n.startsWith('alert-delivery.json.corrupt-'))).toHaveLength(1);
}, 180_000);

test('a symlinked delivery state is refused, not read; spilled alerts count', async () => {
  const sb = sandbox();
  const l2 = join(sb.root, '.l2');
  mkdirSync(join(l2, 'alerts_buffer.jsonl.spill'), { recursive: true });
  writeFileSync(join(l2, 'alerts_buffer.jsonl.spill', 'a.json'), 'x\n');
  writeFileSync(join(sb.dir, 'elsewhere.json'), '{"droppedTotal":5,"droppedUnreported":1}');
  symlinkSync(join(sb.dir, 'elsewhere.json'), join(l2, 'alert-delivery.json'));
  const res = await run('l2alert', ['buffer-status'], sb.env, { timeout: 120_000 });
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toContain(`refusing to follow the symlink at ${l2}/alert-delivery.json: state files must be regular files; remove the link (rm ${l2}/alert-delivery.json) and run again`);
  expect(res.stdout).toContain('buffered alerts: 1\n');
  expect(res.stdout).toContain('dropped:         0 in total\n');
  expect(res.stdout).toContain(`spilled:         1 (in ${l2}/alerts_buffer.jsonl.spill, collected by the next flush)`);
}, 180_000);

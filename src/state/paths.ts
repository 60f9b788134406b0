/**
 * Where shared state lives on the backups volume. Everything is under `$BACKUP_ROOT/.l2/`
 * (hidden, so the runbook's `ls -t /backups/ | head -1` never sees it).
 */
import { join } from 'node:path';

export function statePaths(root: string) {
  const dir = join(root, '.l2');
  const backup = join(dir, 'backup');
  const health = join(dir, 'health');
  return {
    root,
    dir,
    lock: (name: string) => join(dir, 'locks', `${name}.lock`),
    alertDelivery: join(dir, 'alert-delivery.json'),
    backup,
    backupLastRun: join(backup, 'last-run.json'),
    backupLastSuccess: join(backup, 'last-success.json'),
    backupRuns: join(backup, 'runs.jsonl'),
    backupRemote: join(backup, 'remote'),
    backupVerify: join(backup, 'verify'),
    health,
    healthState: join(health, 'state.json'),
  };
}

export type StatePaths = ReturnType<typeof statePaths>;

/**
 * What l2backup's jobs need beyond `status`, `list` and `config`: the backup engine, restore,
 * verify, export, drill, retention and the S3 client behind them. l2backup.ts loads this with
 * import() inside the commands that use it, so `l2backup status` (cron and people run it often)
 * neither parses nor links it (bench/startup.mjs).
 */
export { runBackup, applyRetention, localPolicy, uploadPending, withBackupLock } from '../backup/jobs.js';
export { BackupRecords } from '../backup/records.js';
export { preflight, restore } from '../backup/restore.js';
export { openRemote, resolveSnapshot, selectSources } from '../backup/catalog.js';
export { verifySnapshot } from '../backup/verify.js';
export { checkExportTarget, exportSnapshot } from '../backup/export.js';
export { cleanupLogs } from '../backup/cleanup-logs.js';
export { drill } from '../backup/drill.js';
export { pruneRemote, remotePolicy } from '../backup/remote-retention.js';
export { listLocal } from '../backup/layout.js';
export { withRunPings } from '../backup/ping.js';

/** l2backup: snapshots of models, logs, reports and configs, local and on S3 (the old backup.sh). */
import { EXIT, L2Error, UsageError, errorMessage } from '../errors.js';
import { formatBytes } from '../output/index.js';
import type { JobContext } from '../backup/jobs.js';
import type { Decision, RetentionPolicy } from '../backup/retention.js';
import { localRows } from '../backup/status.js';
import type { VerifyReport } from '../backup/verify.js';
import { readLastDrill } from '../backup/drill-record.js';
import { parseSample } from '../backup/drill-sample.js';
import { Option, action, addConfigCommand, createProgram, jsonOption, parseNumberOption, runProgram, subcommand, withNdjson } from './common.js';
import { printSnapshots, spec, statusCommand } from './l2backup-status.js';

// The jobs' code loads inside the commands that run them: `status` stays light (bench/startup.mjs).
const engine = () => import('./l2backup-engine.js');


const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function buildProgram() {
  const program = createProgram(spec);

  subcommand(program, 'status', 'last run, snapshots, remote state, free space, lock holder, next run (the default)')
    .addOption(jsonOption())
    .option('--du', 'count local bytes as du -sb does, walking every snapshot (slow on a large volume); default: the bytes each backup recorded')
    .action(action(spec, statusCommand));

  for (const [kind, what] of [
    ['nightly', 'the nightly backup (cron, 02:00 UTC)'],
    ['snapshot', 'a backup by hand'],
  ] as const) {
    withNdjson(subcommand(program, kind, `${what}: snapshot every source, upload pending snapshots, apply retention`)).action(
      action(spec, async (ctx) => {
        const { runBackup, withRunPings } = await engine();
        return kind === 'nightly' ? withRunPings(ctx, 'l2backup nightly', () => runBackup(ctx, kind)) : runBackup(ctx, kind);
      }),
    );
  }
  subcommand(program, 'emergency-pre-restore', 'fast capture of the current state into .pre-restore/ (kept 7 days, not uploaded)')
    .option('--upload', 'upload the capture too')
    .action(action(spec, async (ctx, opts: { upload?: boolean }) => (await engine()).runBackup(ctx, 'emergency-pre-restore', { upload: opts.upload })));

  subcommand(program, 'report', 'write the status page (HTML) from the state files on the volume; works on a copy of a volume too')
    .option('-o, --output <file>', "where to write it ('-' for stdout); default $BACKUP_ROOT/.l2/report/index.html")
    .action(
      action(spec, async ({ cfg, out }, opts: { output?: string }) => {
        const { buildStatusPage, statusPagePath } = await import('../report/index.js');
        const { checkReportTarget, writeReportFile } = await import('../report/target.js');
        const file = opts.output === undefined ? statusPagePath(cfg.BACKUP_ROOT) : opts.output === '-' ? '-' : await checkReportTarget(opts.output, cfg.BACKUP_ROOT);
        const html = await buildStatusPage(cfg);
        if (file === '-') {
          process.stdout.write(html);
          return EXIT.OK;
        }
        await writeReportFile(file, html, opts.output !== undefined);
        out.print(`status page written: ${file} (${formatBytes(Buffer.byteLength(html))})`);
        return EXIT.OK;
      }),
    );

  subcommand(program, 'list', 'list snapshots (local, or on the remote with --remote)')
    .option('--remote', 'list the remote snapshots')
    .addOption(jsonOption())
    .action(
      action(spec, async ({ cfg, out }, opts: { remote?: boolean; json?: boolean }) => {
        if (!opts.remote) {
          const rows = await localRows(cfg, (m) => out.warn(m));
          if (opts.json) out.json(rows);
          else printSnapshots(out, rows);
          return EXIT.OK;
        }
        const remote = await (await engine()).openRemote(cfg);
        try {
          const ids = await remote.listIds();
          const rows = [];
          for (const id of ids) rows.push({ id, complete: await remote.isComplete(id) });
          if (opts.json) out.json(rows);
          else {
            out.print(`remote snapshots at ${remote.url}`);
            out.table(['ID', 'STATE'], rows.map((r) => [r.id, r.complete ? 'complete' : 'INCOMPLETE']));
          }
          return EXIT.OK;
        } catch (err) {
          throw new L2Error(remote.describe(err));
        } finally {
          remote.destroy();
        }
      }),
    );

  withNdjson(subcommand(program, 'restore', 'restore a snapshot (id or latest) into the sources or --target, hash-checked'))
    .argument('<id>', "snapshot id (YYYYMMDD-HHMMSS) or 'latest'")
    .option('--only <sources>', 'comma-separated sources to restore, e.g. models,configs', list)
    .addOption(new Option('--from <where>', 'restore from').choices(['local', 'remote']).default('local'))
    .option('--target <dir>', 'restore under DIR/<source> instead of the configured source paths')
    .option('--dry-run', 'show what would be restored')
    .option('--no-pre-restore', 'skip the emergency-pre-restore capture')
    .action(
      action(spec, async (ctx, id: string, opts: { only?: string[]; from: 'local' | 'remote'; target?: string; dryRun?: boolean; preRestore: boolean }) =>
        (await engine()).restore(ctx, id, { only: opts.only, from: opts.from, target: opts.target, dryRun: Boolean(opts.dryRun), preRestore: opts.preRestore }),
      ),
    );

  subcommand(program, 'drill', 'restore test: restore the latest snapshot into a scratch folder, check every file, record the time, then remove it')
    .addOption(new Option('--from <where>', 'restore from').choices(['local', 'remote']).default('local'))
    .option('--sample <share>', 'restore only a random share of the files: a fraction (0.1) or a percentage (10%)', parseSample, 1)
    .addOption(jsonOption())
    .action(
      action(spec, async (ctx, opts: { from: 'local' | 'remote'; sample: number; json?: boolean }) => {
        const code = await (await engine()).drill(ctx, { from: opts.from, sample: opts.sample });
        if (opts.json) ctx.out.json((await readLastDrill(ctx.cfg.BACKUP_ROOT, (m) => ctx.out.warn(m))) ?? null);
        return code;
      }),
    );

  withNdjson(subcommand(program, 'verify', 're-hash a snapshot against its manifest; exit 1 on any missing, changed or extra file'))
    .argument('[id]', "snapshot id or 'latest'", 'latest')
    .option('--all', 'every local snapshot')
    .option('--remote', 'verify the remote copy (downloads and hashes)')
    .option('--sample <fraction>', 'remote: hash only this fraction of the files (0-1)', parseNumberOption('--sample', 0.0001, 1), 1)
    .action(
      action(spec, async (ctx, idArg: string, opts: { all?: boolean; remote?: boolean; sample: number; json?: boolean }) => {
        if (opts.all && opts.remote) throw new UsageError('--all works on local snapshots; verify remote snapshots one id at a time');
        // --all holds the backup lock, so retention cannot delete a snapshot while it is read.
        const { withBackupLock } = await engine();
        return opts.all ? withBackupLock(ctx, 'l2backup verify --all', () => verifyCommand(ctx, idArg, opts)) : verifyCommand(ctx, idArg, opts);
      }),
    );

  const verifyCommand = async ({ cfg, out, signal }: JobContext, idArg: string, opts: { all?: boolean; remote?: boolean; sample: number; json?: boolean }) => {
        const { BackupRecords, listLocal, resolveSnapshot, verifySnapshot } = await engine();
        const ids = opts.all ? (await listLocal(cfg.BACKUP_ROOT, true)).map((r) => r.id) : [idArg];
        const records = new BackupRecords(cfg.BACKUP_ROOT, (m) => out.warn(m));
        const reports: VerifyReport[] = [];
        for (const id of ids) {
          const snap = await resolveSnapshot(cfg, id, opts.remote ? 'remote' : 'local');
          try {
            const progress = await out.progress(`verifying ${snap.id} (${snap.origin})`);
            const rep = await verifySnapshot(snap, opts.remote ? opts.sample : 1, signal, (n, total) => {
              progress.update(`verifying ${snap.id}: ${n}/${total}`);
              out.status({ phase: 'verify', snapshot_id: snap.id, files_done: n, total_files: total });
            });
            const line = `${snap.id} (${snap.origin}): ${rep.checked}/${rep.files} files hashed, ${rep.missing.length} missing, ${rep.changed.length} changed, ${rep.extra.length} extra`;
            if (rep.ok) progress.succeed(`${line}: OK`);
            else progress.fail(`${line}: MISMATCH`);
            for (const p of rep.missing.slice(0, 20)) out.error(`missing: ${p}`);
            for (const p of rep.changed.slice(0, 20)) out.error(`changed: ${p}`);
            for (const p of rep.extra.slice(0, 20)) out.error(`extra:   ${p}`);
            await records.writeVerify(`${snap.id}${snap.origin === 'remote' ? '.remote' : ''}`, rep).catch(() => {});
            reports.push(rep);
          } catch (err) {
            if (err instanceof L2Error || !snap.remote) throw err;
            throw new L2Error(snap.remote.describe(err));
          } finally {
            snap.remote?.destroy();
          }
        }
        // --json: the report (every report with --all) is in the summary line.
        out.addSummary(opts.all ? { reports } : { report: reports[0] });
        return reports.every((r) => r.ok) ? EXIT.OK : EXIT.FAILED;
  };

  subcommand(program, 'export', 'write a snapshot as a .tar.gz (streamed), e.g. to restore in staging')
    .argument('<id>', "snapshot id or 'latest'")
    .requiredOption('-o, --output <file>', 'the archive to write (FILE.tar.gz)')
    .option('--only <sources>', 'comma-separated sources', list)
    .action(
      action(spec, async (ctx, idArg: string, opts: { output: string; only?: string[] }) => {
        const { cfg, out, signal } = ctx;
        const { checkExportTarget, exportSnapshot, preflight, resolveSnapshot, selectSources, withBackupLock } = await engine();
        if (opts.only !== undefined && opts.only.length === 0) throw new UsageError('--only is empty: name the sources to export (e.g. --only models), or leave --only out for all');
        const file = await checkExportTarget(cfg.BACKUP_ROOT, opts.output);
        await preflight(ctx, idArg, 'local');
        // The backup lock: retention cannot delete the snapshot while it is being read.
        return withBackupLock(ctx, `l2backup export ${idArg}`, async () => {
          const snap = await resolveSnapshot(cfg, idArg, 'local');
          const sources = new Set(selectSources(snap.manifest, snap.entries, opts.only));
          const progress = await out.progress(`exporting ${snap.id} to ${file}`);
          try {
            const res = await exportSnapshot(snap.dir!, snap.id, snap.entries.filter((e) => sources.has(e.s)), file, signal, (m) => out.warn(m));
            if (res.skipped.length) {
              progress.fail(`exported ${snap.id} partially: ${res.files} files into ${file} (${formatBytes(res.bytes)}); ${res.skipped.length} entr${res.skipped.length === 1 ? 'y' : 'ies'} left out (names that differ only in non-UTF-8 bytes): ${res.skipped.slice(0, 5).join(', ')}`);
              return EXIT.PARTIAL;
            }
            progress.succeed(`exported ${snap.id}: ${res.files} files into ${file} (${formatBytes(res.bytes)})`);
          } catch (err) {
            progress.fail(`export of ${snap.id} failed; nothing was left at ${file}`);
            if (err instanceof L2Error || signal.aborted) throw err;
            throw new L2Error(`export of ${snap.id} to ${file} failed: ${errorMessage(err)}`);
          }
          return EXIT.OK;
        });
      }),
    );

  subcommand(program, 'prune', 'apply retention now (local; remote too with --remote): each snapshot with keep (reasons) or delete')
    .option('--dry-run', 'show what would be kept and deleted, and change nothing')
    .option('--remote', 'also apply remote retention')
    .addOption(jsonOption())
    .action(
      action(spec, async (ctx, opts: { dryRun?: boolean; remote?: boolean; json?: boolean }) => {
        const { BackupRecords, applyRetention, localPolicy, openRemote, pruneRemote, remotePolicy, withBackupLock } = await engine();
        return withBackupLock(ctx, 'l2backup prune', async () => {
          const dryRun = Boolean(opts.dryRun);
          const records = new BackupRecords(ctx.cfg.BACKUP_ROOT, (m) => ctx.out.warn(m));
          const local = await applyRetention(ctx, records, dryRun);
          const report: Record<string, PruneReport> = { local: pruneReport(localPolicy(ctx.cfg), local, dryRun) };
          if (!opts.json) printPrune(ctx.out, 'local', report.local!);
          if (opts.remote) {
            const remote = await openRemote(ctx.cfg);
            try {
              const plan = await pruneRemote(ctx, remote, records, dryRun);
              report.remote = pruneReport(remotePolicy(ctx.cfg), plan, dryRun);
              if (!opts.json) printPrune(ctx.out, `remote ${remote.url}`, report.remote);
              // The prune job's own key must be able to delete: that is a failed prune.
              if (plan.denied) throw new L2Error(`remote prune failed: ${plan.denied}; give the prune job a key that may delete (S3_PRUNE_ACCESS_KEY_ID/S3_PRUNE_SECRET_ACCESS_KEY)`);
            } catch (err) {
              if (err instanceof L2Error) throw err;
              throw new L2Error(remote.describe(err));
            } finally {
              remote.destroy();
            }
          }
          if (opts.json) ctx.out.json(report);
          return EXIT.OK;
        });
      }),
    );

  subcommand(program, 'upload', 'upload pending snapshots to the remote now (oldest first)').action(
    action(spec, async (ctx) => {
      const { BackupRecords, uploadPending, withBackupLock } = await engine();
      return withBackupLock(ctx, 'l2backup upload', async () => {
        if (!ctx.cfg.BACKUP_BUCKET) throw new UsageError('BACKUP_BUCKET is not set: there is no remote to upload to');
        const res = await uploadPending(ctx, new BackupRecords(ctx.cfg.BACKUP_ROOT, (m) => ctx.out.warn(m)));
        ctx.out.print(`uploaded: ${res.uploaded.length ? res.uploaded.join(', ') : 'nothing pending'}`);
        for (const k of res.skipped) ctx.out.print(`skipped ${k.id}: ${k.reason}`);
        if (res.error) throw new L2Error(res.error);
        return res.skipped.length ? EXIT.FAILED : EXIT.OK;
      });
    }),
  );

  subcommand(program, 'check-remote', 'check that the remote is reachable and the credentials work (lists the bucket)').action(
    action(spec, async ({ cfg, out }) => {
      const remote = await (await engine()).openRemote(cfg);
      try {
        const ids = await remote.listIds();
        out.print(`remote OK: ${remote.url} answers; ${ids.length} snapshot folder(s)`);
        // Issue 12: whether the bucket encrypts by default (a key without the right to ask is not a failed check).
        const encryption = await remote.bucketEncryption().catch((err) => `unknown (${remote.describe(err).split(';')[0]})`);
        const asked = cfg.S3_SSE ? `; l2backup asks for ${cfg.S3_SSE} on every write (S3_SSE)` : '; l2backup asks for none (S3_SSE unset)';
        out.print(`bucket default encryption: ${encryption}${asked}`);
        return EXIT.OK;
      } catch (err) {
        throw new L2Error(`remote check failed: ${remote.describe(err)}`);
      } finally {
        remote.destroy();
      }
    }),
  );

  subcommand(program, 'cleanup-logs', 'weekly: delete backed-up log files older than LOG_RETENTION_DAYS (never one that is in no backup)')
    .option('--dry-run', 'show what would be deleted')
    .option('--source <name>', 'the logs source', 'logs')
    .action(
      action(spec, async (ctx, opts: { dryRun?: boolean; source: string }) => {
        const { cleanupLogs, withBackupLock } = await engine();
        return withBackupLock(ctx, 'l2backup cleanup-logs', async () => {
          const res = await cleanupLogs(ctx, opts.source, Boolean(opts.dryRun));
          ctx.out.print(`${opts.dryRun ? 'would delete' : 'deleted'} ${res.deleted.length} log file(s) (${formatBytes(res.bytesFreed)}); kept ${res.keptNotBackedUp.length} old file(s) that are in no complete backup`);
          for (const p of res.keptNotBackedUp.slice(0, 20)) ctx.out.warn(`kept (not in any backup yet): ${p}`);
          return EXIT.OK;
        });
      }),
    );

  addConfigCommand(program, spec);
  // Bare `l2backup` shows the status, as the old `backup.sh` did.
  // A word that is no command (`l2backup statu`) is named as one, not as "too many arguments".
  program.allowExcessArguments(true).action(async () => {
    const [word] = program.args;
    if (word !== undefined) program.error(`unknown command '${word}'`, { code: 'commander.unknownCommand', exitCode: EXIT.USAGE });
    await program.commands.find((c) => c.name() === 'status')!.parseAsync([], { from: 'user' });
  });
  return program;
}

interface PruneReport {
  policy: string;
  dryRun: boolean;
  refused?: string;
  snapshots: { id: string; action: 'keep' | 'delete'; reasons: string[]; why: string }[];
}

function pruneReport(policy: RetentionPolicy | Omit<RetentionPolicy, 'preRestoreDays'>, plan: { keep: Decision[]; delete: Decision[]; refused?: string; locked?: { id: string; until?: string }[] }, dryRun: boolean): PruneReport {
  // A delete the server refused because the objects are under object lock is a keep, not a failure.
  const lockedUntil = new Map((plan.locked ?? []).map((l) => [l.id, `locked until ${l.until ?? 'a later date'}`]));
  const rows = [
    ...plan.keep.map((d) => ({ ...d, action: 'keep' as const })),
    ...plan.delete.map((d) => (lockedUntil.has(d.id) ? { ...d, why: lockedUntil.get(d.id)!, reasons: [lockedUntil.get(d.id)!], action: 'keep' as const } : { ...d, action: 'delete' as const })),
  ];
  // Newest first, as restic lists them (ids are UTC times).
  rows.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return {
    policy: policy.keep ? policy.keep.text : `${policy.days} day(s) from now`,
    dryRun,
    ...(plan.refused ? { refused: plan.refused } : {}),
    snapshots: rows.map((r) => ({ id: r.id, action: r.action, reasons: r.reasons, why: r.why })),
  };
}

function printPrune(out: import('../output/index.js').Output, where: string, r: PruneReport): void {
  out.print(`${where}: policy ${r.policy}${r.dryRun ? ' (dry run: nothing changed)' : ''}`);
  for (const s of r.snapshots) out.print(`  ${s.id}  ${s.action === 'keep' ? `keep (${s.why})` : `delete (${s.why})`}`);
  const deleted = r.snapshots.filter((s) => s.action === 'delete').map((s) => s.id).reverse();
  out.print(`${where}: ${r.dryRun ? 'would delete' : 'deleted'}: ${deleted.length ? deleted.join(', ') : 'nothing'}`);
}

export function main(argv: string[]): Promise<void> {
  return runProgram(buildProgram(), argv);
}

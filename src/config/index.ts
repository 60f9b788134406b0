/**
 * The one place configuration is loaded and validated.
 * Sources, strongest first: the process environment, the env file (L2_ENV_FILE, default
 * /app/.env), built-in defaults. A bad value stops the program before any work with one line
 * naming the variable, the masked value, what was expected and where the value came from.
 */
import { relative, isAbsolute } from 'node:path';
import { statSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { readEnvFile } from './envfile.js';
import { Invalid } from './parsers.js';
import { SETTINGS, type Group, type SettingName, type Settings } from './settings.js';
import { buildTargets, type HealthTarget } from './health-targets.js';
import { maskUrlCredentials, urlSecretParts } from '../output/mask.js';

export type { Settings, SettingName, Group } from './settings.js';
export type { HealthTarget } from './health-targets.js';
export { SETTINGS } from './settings.js';

export type ValueSource = 'env' | 'default' | { file: string };

export interface Config extends Settings {
  /** Where each setting's value came from. */
  sources: Record<SettingName, ValueSource>;
  /** Raw strings as given (for `config` output, masked there). */
  raw: Partial<Record<SettingName, string>>;
  groups: Group[];
  envFile: { path: string; loaded: boolean };
  /** Health targets (health group only). */
  targets: HealthTarget[];
  /** Odd but workable combinations, shown by `config`. */
  warnings: string[];
}

export function sourceLabel(source: ValueSource): string {
  return typeof source === 'string' ? source : source.file;
}

export function isSecret(name: SettingName): boolean {
  return Boolean((SETTINGS[name] as { secret?: boolean }).secret);
}

/**
 * Masks a value for display. Secrets: URLs keep scheme and host (so an operator sees which
 * service), the rest goes. Any other value: URL userinfo and token parameters are masked.
 */
export function maskValue(name: SettingName, value: string): string {
  if (value === '') return value;
  if (!isSecret(name)) return maskUrlCredentials(value);
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return `${url.protocol}//${url.host}/****`;
  } catch {}
  return '****';
}

export function loadConfig(groups: Group[], env: NodeJS.ProcessEnv = process.env): Config {
  const envFilePath = nonEmptyEnv(env.L2_ENV_FILE);
  const filePath = envFilePath ?? SETTINGS.L2_ENV_FILE.default;
  if (envFilePath !== undefined && !isAbsolute(envFilePath)) {
    throw new ConfigError(`L2_ENV_FILE="${envFilePath}" (from env) is not valid: expected an absolute path (starting with /)`);
  }
  const fileValues = readEnvFile(filePath, env);
  if (fileValues === undefined && envFilePath !== undefined) {
    throw new ConfigError(`L2_ENV_FILE="${envFilePath}" (from env): no such file; create it or unset L2_ENV_FILE to use ${SETTINGS.L2_ENV_FILE.default}`);
  }

  const want = new Set<Group>(['core', ...groups]);
  const values: Record<string, unknown> = {};
  const sources = {} as Record<SettingName, ValueSource>;
  const raw: Partial<Record<SettingName, string>> = {};
  const names = Object.keys(SETTINGS) as SettingName[];

  // BACKUP_ROOT first: other defaults are expressed relative to it.
  const ordered = ['BACKUP_ROOT' as SettingName, ...names.filter((n) => n !== 'BACKUP_ROOT')];
  for (const name of ordered) {
    const spec = SETTINGS[name];
    let value: string | undefined;
    let source: ValueSource = 'default';
    if (name === 'L2_ENV_FILE') {
      value = filePath;
      source = envFilePath !== undefined ? 'env' : 'default';
    } else if (nonEmptyEnv(env[name]) !== undefined) {
      value = env[name];
      source = 'env';
    } else if (fileValues?.has(name) && fileValues.get(name) !== '') {
      value = fileValues.get(name);
      source = { file: filePath };
    } else if (spec.default !== undefined) {
      value = spec.default.replace('${BACKUP_ROOT}', String(values.BACKUP_ROOT ?? '/backups'));
    }
    sources[name] = source;
    if (value === undefined) {
      values[name] = undefined;
      continue;
    }
    raw[name] = value;
    try {
      values[name] = (spec.parse as (v: string) => unknown)(value);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      if (!want.has(spec.group)) {
        // Not this program's business: fall back to the default so it cannot get in the way.
        values[name] = spec.default === undefined ? undefined : (spec.parse as (v: string) => unknown)(spec.default.replace('${BACKUP_ROOT}', String(values.BACKUP_ROOT)));
        continue;
      }
      // Masked before it is cut: a cut inside a URL could otherwise leave half a password showing.
      const masked = maskValue(name, value);
      const shown = masked.length > 80 ? `${masked.slice(0, 77)}...` : masked;
      throw new ConfigError(`${name}="${shown}" (from ${sourceLabel(source)}) is not valid: expected ${err.message}`);
    }
  }

  const cfg = values as unknown as Config;
  cfg.sources = sources;
  cfg.raw = raw;
  cfg.groups = [...want];
  cfg.envFile = { path: filePath, loaded: fileValues !== undefined };
  cfg.targets = [];
  cfg.warnings = [];
  crossCheck(cfg, want);
  return cfg;
}

function nonEmptyEnv(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function from(cfg: Config, name: SettingName): string {
  return `${name} (from ${sourceLabel(cfg.sources[name])})`;
}

function inside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** BACKUP_ROOT must be a folder or not exist yet: a file there (or on its path) is a usage error, not an ENOTDIR deep in the lock code. */
function checkBackupRoot(cfg: Config): void {
  let code: string | undefined;
  try {
    if (statSync(cfg.BACKUP_ROOT).isDirectory()) return;
    code = 'ENOTDIR';
  } catch (err) {
    code = (err as NodeJS.ErrnoException).code;
  }
  if (code === 'ENOENT' || code === 'EACCES') return; // created on first use, or reported where it is used
  throw new ConfigError(`${from(cfg, 'BACKUP_ROOT')}=${cfg.BACKUP_ROOT} is not a folder (${code}); point BACKUP_ROOT at the backups volume's folder`);
}

/** Issue 12's pairs: prune keys, encryption and object lock settings that need each other. */
function checkRemoteProtection(cfg: Config): void {
  if (Boolean(cfg.S3_PRUNE_ACCESS_KEY_ID) !== Boolean(cfg.S3_PRUNE_SECRET_ACCESS_KEY)) {
    const missing = cfg.S3_PRUNE_ACCESS_KEY_ID ? 'S3_PRUNE_SECRET_ACCESS_KEY' : 'S3_PRUNE_ACCESS_KEY_ID';
    throw new ConfigError(`${missing} is not set but its partner is; set both S3_PRUNE_ACCESS_KEY_ID and S3_PRUNE_SECRET_ACCESS_KEY, or neither`);
  }
  if (cfg.S3_SSE_KMS_KEY_ID && cfg.S3_SSE !== 'aws:kms') throw new ConfigError(`${from(cfg, 'S3_SSE_KMS_KEY_ID')} is set but S3_SSE is not aws:kms; set S3_SSE=aws:kms or unset the key id`);
  if (Boolean(cfg.S3_OBJECT_LOCK_MODE) !== Boolean(cfg.S3_OBJECT_LOCK_DAYS)) {
    const missing = cfg.S3_OBJECT_LOCK_MODE ? 'S3_OBJECT_LOCK_DAYS' : 'S3_OBJECT_LOCK_MODE';
    throw new ConfigError(`${missing} is not set but its partner is; object lock needs both S3_OBJECT_LOCK_MODE (GOVERNANCE|COMPLIANCE) and S3_OBJECT_LOCK_DAYS`);
  }
}

/** L2_METRICS_DIR is the collector's folder: it must exist (l2ops never creates it, a typo would write metrics nobody reads). */
function checkMetricsDir(cfg: Config): void {
  if (cfg.L2_METRICS_DIR === undefined) return;
  let why: string;
  try {
    if (statSync(cfg.L2_METRICS_DIR).isDirectory()) return;
    why = 'is not a folder';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
  }
  throw new ConfigError(`${from(cfg, 'L2_METRICS_DIR')}=${cfg.L2_METRICS_DIR} ${why}; point it at node_exporter's --collector.textfile.directory, or unset it`);
}

/** Checks that involve more than one setting: contradictions are errors, oddities warnings. */
function crossCheck(cfg: Config, want: Set<Group>): void {
  checkBackupRoot(cfg);
  checkMetricsDir(cfg);
  if (want.has('alert')) {
    if (cfg.ALERT_TIMEOUT_MS > cfg.ALERT_BUDGET_MS) {
      throw new ConfigError(`${from(cfg, 'ALERT_TIMEOUT_MS')}=${cfg.ALERT_TIMEOUT_MS} is larger than ${from(cfg, 'ALERT_BUDGET_MS')}=${cfg.ALERT_BUDGET_MS}; make the timeout smaller than the budget`);
    }
    if (cfg.ALERT_WEBHOOK_SECRET && !cfg.ALERT_WEBHOOK_URL) cfg.warnings.push('ALERT_WEBHOOK_SECRET is set but ALERT_WEBHOOK_URL is not: alerts are log lines only');
  }
  if (want.has('backup')) {
    if (Boolean(cfg.S3_ACCESS_KEY_ID) !== Boolean(cfg.S3_SECRET_ACCESS_KEY)) {
      const missing = cfg.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID';
      throw new ConfigError(`${missing} is not set but its partner is; set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither`);
    }
    checkRemoteProtection(cfg);
    for (const src of cfg.BACKUP_SOURCES) {
      if (inside(cfg.BACKUP_ROOT, src.path) || inside(src.path, cfg.BACKUP_ROOT)) {
        throw new ConfigError(`${from(cfg, 'BACKUP_SOURCES')}: source ${src.name}=${src.path} overlaps BACKUP_ROOT=${cfg.BACKUP_ROOT}; a backup must not contain itself`);
      }
    }
    if (!cfg.BACKUP_BUCKET && (cfg.S3_ENDPOINT || cfg.S3_ACCESS_KEY_ID)) cfg.warnings.push('S3 settings are present but BACKUP_BUCKET is not set: backups stay local');
  }
  if (want.has('health')) {
    if (cfg.HEALTH_TIMEOUT_MS > cfg.HEALTH_RUN_BUDGET_MS) {
      throw new ConfigError(`${from(cfg, 'HEALTH_TIMEOUT_MS')}=${cfg.HEALTH_TIMEOUT_MS} is larger than ${from(cfg, 'HEALTH_RUN_BUDGET_MS')}=${cfg.HEALTH_RUN_BUDGET_MS}; make the timeout smaller than the run budget`);
    }
    if (cfg.HEALTH_LATENCY_WARN_MS >= cfg.HEALTH_TIMEOUT_MS) cfg.warnings.push('HEALTH_LATENCY_WARN_MS is not below HEALTH_TIMEOUT_MS: no target can be DEGRADED');
    cfg.targets = buildTargets(cfg.HEALTH_ENDPOINTS, cfg.HEALTH_SSE_STREAMS, cfg.HEALTH_CONFIG, {
      timeoutMs: cfg.HEALTH_TIMEOUT_MS,
      latencyWarnMs: cfg.HEALTH_LATENCY_WARN_MS,
      firstEventTimeoutMs: cfg.HEALTH_SSE_FIRST_EVENT_TIMEOUT_MS,
      observeMs: cfg.HEALTH_SSE_OBSERVE_MS,
      maxGapMs: cfg.HEALTH_SSE_MAX_GAP_MS,
      maxFrameBytes: cfg.HEALTH_SSE_MAX_FRAME_BYTES,
    });
    // Each target against its own kind's timeouts: the SSE defaults do not concern HTTP targets.
    for (const t of cfg.targets) {
      if (t.kind === 'http' && t.timeoutMs > cfg.HEALTH_RUN_BUDGET_MS) {
        throw new ConfigError(`health target "${t.name}": its timeout (${t.timeoutMs} ms) exceeds HEALTH_RUN_BUDGET_MS=${cfg.HEALTH_RUN_BUDGET_MS}; shorten it or raise the budget`);
      }
      if (t.kind === 'sse' && t.firstEventTimeoutMs + t.observeMs > cfg.HEALTH_RUN_BUDGET_MS) {
        throw new ConfigError(`health target "${t.name}": its SSE timeouts (first event ${t.firstEventTimeoutMs} ms + observation ${t.observeMs} ms) exceed HEALTH_RUN_BUDGET_MS=${cfg.HEALTH_RUN_BUDGET_MS}; shorten them (HEALTH_SSE_FIRST_EVENT_TIMEOUT_MS, HEALTH_SSE_OBSERVE_MS) or raise the budget`);
      }
    }
  }
}

export interface ConfigRow {
  name: string;
  value: string;
  source: string;
  secret: boolean;
}

/** The effective configuration of the given groups, secrets masked: what `<tool> config` prints. */
export function describeConfig(cfg: Config): ConfigRow[] {
  const rows: ConfigRow[] = [];
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    if (!cfg.groups.includes(SETTINGS[name].group)) continue;
    const raw = cfg.raw[name];
    rows.push({ name, value: raw === undefined ? '(unset)' : maskValue(name, raw), source: raw === undefined ? '-' : sourceLabel(cfg.sources[name]), secret: isSecret(name) });
  }
  return rows;
}

/** Every secret value in force, to scrub from anything printed or stored. */
export function secretValues(cfg: Config): string[] {
  const out: string[] = [];
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const v = cfg.raw[name];
    if (isSecret(name) && v && v.length >= 6) out.push(v);
    // URL userinfo and token parameters in any setting (HEALTH_ENDPOINTS, S3_ENDPOINT...).
    // A setting's own default holds none (config tests check each): skipping it spares a
    // light command compiling the masking regexes when nothing is configured.
    else if (v && v !== SETTINGS[name].default) out.push(...urlSecretParts(v).filter((s) => s.length >= 6));
  }
  for (const t of cfg.targets) {
    for (const v of Object.values(t.headers)) if (v.length >= 6) out.push(v);
    out.push(...urlSecretParts(t.url).filter((s) => s.length >= 6));
  }
  return out;
}

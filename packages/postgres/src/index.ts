/**
 * @lanes/postgres: managed PostgreSQL members (keeper), the lease's witness (arbiter), the
 * failover decision, and the rendered configuration. Processes: dist/keeper-main.js and
 * dist/arbiter-main.js (see the package README for their flags).
 */
export * from './decide.js';
export { Keeper, KEEPER_READY_FILE, type KeeperOptions, type KeeperStatus, type MemberRole } from './keeper.js';
export { Arbiter, ARBITER_READY_FILE } from './arbiter.js';
export { parseArbiterConfig, parseKeeperConfig, parsePeer, type ArbiterConfig, type KeeperConfig, type PeerConfig } from './config.js';
export { renderPgHba, renderPostgresqlConf, type PgHbaInput, type PostgresConfInput } from './pgconf.js';
export { createLogger, type Logger, type LogLevel } from './logging.js';
export { Secret } from './secret.js';
export {
  chooseRestoreBackup,
  DirectoryBackupStore,
  planRetention,
  restoreCommandFor,
  restoreToTime,
  takeBaseBackup,
  verifyBackup,
  type BackupInfo,
  type BackupStore,
  type RestoreOptions,
  type RestoreResult,
  type RetentionPlan,
} from './backup.js';

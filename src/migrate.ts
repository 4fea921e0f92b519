// The migration runner: src/migrate/ (run.ts: up, down, status; source.ts: the files; deferred.ts; lease.ts; locks.ts).
export {
  migrateDown,
  migrateUp,
  migrationStatus,
  MigrationFileError,
  plannedSqlFiles,
  readMigrationStatus,
  sqlFileCollisions,
  type DeferredStepState,
  type MigrateOptions,
  type MigrateResult,
  type MigrationStatus,
  type SqlFileState,
} from './migrate/run.js';

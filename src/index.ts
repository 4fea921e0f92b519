export { OperationalError } from './errors.js';
export { connect, createPool, describeTarget } from './db/connect.js';
export { LocalCluster, ensurePostgresPackages } from './db/cluster.js';
export { migrateUp, migrateDown, migrationStatus, MigrationFileError } from './migrate.js';
export {
  withHeartbeat,
  defaultHeartbeatIntervalMs,
  InterpretationRunInactiveError,
  type Queryable,
  type InterpretationCounts,
  type WithHeartbeatOptions,
  type HeartbeatRunResult,
} from './heartbeat.js';
export { ingestSource, type IngestInput, type IngestOptions, type IngestResult, type StorageStatus } from './ingest.js';
export * from './storage/index.js';
export { UploadWorker, UPLOAD_QUEUE_CHANNEL, type WorkerOptions, type WorkerStats } from './worker/worker.js';
export { drainUploadQueue, type DrainOptions, type DrainSummary } from './worker/drain.js';
export { WORKER_DEFAULTS, workerSettingsFromEnv, type WorkerSettings } from './worker/config.js';
export { runWorker, type RunWorkerOptions } from './worker/command.js';

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

// The pgbouncer launcher is shared with the benchmarks (bench/pooler).
export { startPgbouncer, type Pgbouncer } from '../../../scripts/pgbouncer.mjs';

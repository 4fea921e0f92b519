import { sleep } from './config.js';
import { isConnectionError, type SoakContext } from './context.js';

export interface Driver {
  stop(): void;
  /** Resolves after the last tick. */
  done: Promise<void>;
}

/**
 * The driver's tick: the test's clock and scheduler, plus the sampled invariants. Each tick backdates the
 * pending jobs' next_retry_at (the retry clock), calls process_upload_queue() and cleanup_stale_interpretations()
 * (the pg_cron schedule) and samples usage drift, users over a limit and runs left past their timeout.
 */
export function startDriver(ctx: SoakContext, tickMs: number): Driver {
  const { f, pool } = ctx;
  let ticking = true;
  const tick = async (): Promise<void> => {
    f.ticks++;
    try {
      const b = await pool.query(`UPDATE public.upload_queue SET next_retry_at = now() WHERE status = 'pending' AND next_retry_at > now()`);
      f.backdated += b.rowCount ?? 0;
      const p = await pool.query<{ r: { rescued?: number } }>('SELECT public.process_upload_queue() AS r');
      f.rescued += p.rows[0]!.r.rescued ?? 0;
      const s = await pool.query<{ n: number }>('SELECT public.cleanup_stale_interpretations() AS n');
      f.sweptRuns += s.rows[0]!.n;
      const usage = await pool.query<{ drift: number; over: number }>(
        `SELECT count(*) FILTER (WHERE u.total_bytes <> coalesce(s.bytes, 0) OR u.total_sources <> coalesce(s.n, 0))::int AS drift,
                count(*) FILTER (WHERE u.total_bytes > coalesce(u.storage_limit_bytes_override, p.storage_limit_bytes)
                                    OR u.interpretation_count_month > coalesce(u.interpretation_limit_month_override, p.interpretation_limit_month))::int AS over
           FROM public.storage_usage AS u
           JOIN public.plans AS p ON p.id = u.plan_id
           LEFT JOIN (SELECT user_id, sum(file_size) AS bytes, count(*) AS n FROM public.sources GROUP BY user_id) AS s
             ON s.user_id = u.user_id`,
      );
      const runs = await pool.query<{ overdue: number | null }>(
        `SELECT max(extract(epoch FROM now() - timeout_at))::float8 AS overdue
           FROM public.interpretation_runs WHERE status IN ('pending', 'running') AND timeout_at < now()`,
      );
      f.samples++;
      if (usage.rows[0]!.drift > 0) f.usageDriftSamples++;
      if (usage.rows[0]!.over > 0) f.overLimitSamples++;
      f.maxOverdueSeconds = Math.max(f.maxOverdueSeconds, runs.rows[0]!.overdue ?? 0);
    } catch (err) {
      f.ticksSkipped++;
      if (!isConnectionError(err) || !ctx.expectedOutage(Date.now())) ctx.unexpectedError('driver tick', err);
    }
  };
  const done = (async () => {
    while (ticking) {
      const started = Date.now();
      await tick();
      await sleep(Math.max(0, tickMs - (Date.now() - started)));
    }
  })();
  return {
    stop() {
      ticking = false;
    },
    done,
  };
}

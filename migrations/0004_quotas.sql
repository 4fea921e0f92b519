-- Up Migration
-- Strict quotas (docs/quotas.md): plans, the per-user counter row storage_usage, closed billing
-- periods (usage_periods), the drift repair log (usage_drift_log) and the rejection counters.
-- Counters are maintained by the triggers in sql/triggers/quotas/; functions in sql/functions/quotas/.

CREATE TABLE public.plans (
  id                         text        NOT NULL,
  display_name               text        NOT NULL,
  storage_limit_bytes        bigint,
  interpretation_limit_month integer,
  max_file_bytes             bigint,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT plans_pkey PRIMARY KEY (id),
  CONSTRAINT plans_id_lowercase_slug CHECK (id ~ '^[a-z][a-z0-9_-]{0,62}$'),
  CONSTRAINT plans_storage_limit_bytes_not_negative CHECK (storage_limit_bytes >= 0),
  CONSTRAINT plans_interpretation_limit_month_not_negative CHECK (interpretation_limit_month >= 0),
  CONSTRAINT plans_max_file_bytes_not_negative CHECK (max_file_bytes >= 0)
);
COMMENT ON TABLE public.plans IS 'Quota plans. NULL limit = unlimited. Plans are data: add or change rows, not code.';

INSERT INTO public.plans (id, display_name, storage_limit_bytes, interpretation_limit_month, max_file_bytes) VALUES
  ('free',       'Free',       1073741824,   100,  104857600),
  ('pro',        'Pro',        107374182400, 1000, 104857600),
  ('enterprise', 'Enterprise', NULL,         NULL, NULL);

-- One counter row per user. The defaults open the first billing period at the start of today (UTC),
-- anchored on today's day of month; "+ 1 month" is applied once to an anchor date, so it clamps to the
-- month end (Jan 31 -> Feb 28/29) exactly as billing_period_bounds() does.
CREATE TABLE public.storage_usage (
  user_id                             uuid        NOT NULL,
  plan_id                             text        NOT NULL DEFAULT 'free',
  total_bytes                         bigint      NOT NULL DEFAULT 0,
  total_sources                       bigint      NOT NULL DEFAULT 0,
  interpretation_count_month          integer     NOT NULL DEFAULT 0,
  billing_anchor_day                  integer     NOT NULL
    DEFAULT EXTRACT(day FROM (now() AT TIME ZONE 'UTC'))::integer,
  billing_period_start                timestamptz NOT NULL
    DEFAULT (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
  billing_period_end                  timestamptz NOT NULL
    DEFAULT ((date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'),
  billing_month                       text        NOT NULL
    DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),
  storage_limit_bytes_override        bigint,
  interpretation_limit_month_override integer,
  max_file_bytes_override             bigint,
  last_calculated                     timestamptz,
  created_at                          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT storage_usage_pkey PRIMARY KEY (user_id),
  CONSTRAINT storage_usage_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.plans (id),
  CONSTRAINT storage_usage_total_bytes_not_negative CHECK (total_bytes >= 0),
  CONSTRAINT storage_usage_total_sources_not_negative CHECK (total_sources >= 0),
  CONSTRAINT storage_usage_interpretation_count_month_not_negative CHECK (interpretation_count_month >= 0),
  CONSTRAINT storage_usage_billing_anchor_day_1_to_31 CHECK (billing_anchor_day BETWEEN 1 AND 31),
  CONSTRAINT storage_usage_billing_period_end_after_start CHECK (billing_period_end > billing_period_start),
  CONSTRAINT storage_usage_billing_month_yyyy_mm CHECK (billing_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
  CONSTRAINT storage_usage_storage_limit_bytes_override_not_negative CHECK (storage_limit_bytes_override >= 0),
  CONSTRAINT storage_usage_interpretation_limit_month_override_not_negative
    CHECK (interpretation_limit_month_override >= 0),
  CONSTRAINT storage_usage_max_file_bytes_override_not_negative CHECK (max_file_bytes_override >= 0)
) WITH (fillfactor = 80);  -- room for HOT updates: the counters change on every write, no indexed column does
COMMENT ON TABLE public.storage_usage IS
  'Per-user usage counters (total_bytes = SUM(sources.file_size), total_sources = COUNT(sources)) and billing period. Written only by triggers and quota functions; usage is never capped by a CHECK so downgrades and deletes always work.';
COMMENT ON COLUMN public.storage_usage.storage_limit_bytes_override IS 'Per-user storage limit; NULL = the plan''s limit.';
COMMENT ON COLUMN public.storage_usage.interpretation_limit_month_override IS 'Per-user interpretations per period; NULL = the plan''s limit.';
COMMENT ON COLUMN public.storage_usage.max_file_bytes_override IS 'Per-user largest file; NULL = the plan''s limit.';
COMMENT ON COLUMN public.storage_usage.billing_month IS 'YYYY-MM of billing_period_start (UTC).';
CREATE INDEX storage_usage_billing_period_end_idx ON public.storage_usage (billing_period_end);
CREATE INDEX storage_usage_plan_id_idx ON public.storage_usage (plan_id);

CREATE TABLE public.usage_periods (
  user_id              uuid        NOT NULL,
  period_start         timestamptz NOT NULL,
  period_end           timestamptz NOT NULL,
  billing_month        text        NOT NULL,
  plan_id              text        NOT NULL,
  interpretation_count integer     NOT NULL,
  interpretation_limit integer,
  total_bytes          bigint      NOT NULL,
  total_sources        bigint      NOT NULL,
  closed_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT usage_periods_pkey PRIMARY KEY (user_id, period_start),
  CONSTRAINT usage_periods_period_end_after_start CHECK (period_end > period_start)
);
COMMENT ON TABLE public.usage_periods IS
  'Closed billing periods: interpretations used and storage at close. Written once per period by the roll (lazy or reset_billing_periods()).';

CREATE TABLE public.usage_drift_log (
  id                bigint      GENERATED ALWAYS AS IDENTITY,
  user_id           uuid        NOT NULL,
  old_total_bytes   bigint      NOT NULL,
  new_total_bytes   bigint      NOT NULL,
  old_total_sources bigint      NOT NULL,
  new_total_sources bigint      NOT NULL,
  bytes_delta       bigint      GENERATED ALWAYS AS (new_total_bytes - old_total_bytes) STORED,
  sources_delta     bigint      GENERATED ALWAYS AS (new_total_sources - old_total_sources) STORED,
  detected_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT usage_drift_log_pkey PRIMARY KEY (id)
);
CREATE INDEX usage_drift_log_user_id_detected_at_idx ON public.usage_drift_log (user_id, detected_at DESC);
COMMENT ON TABLE public.usage_drift_log IS 'Every non-zero correction made by reconcile_storage_usage().';

-- Rejection counters: nextval() is not undone by the rollback of the refused statement.
CREATE SEQUENCE neotoma_ops.quota_rejections_storage AS bigint;
CREATE SEQUENCE neotoma_ops.quota_rejections_interpretations AS bigint;
CREATE SEQUENCE neotoma_ops.quota_rejections_file_size AS bigint;
REVOKE ALL ON SEQUENCE neotoma_ops.quota_rejections_storage, neotoma_ops.quota_rejections_interpretations,
  neotoma_ops.quota_rejections_file_size FROM PUBLIC;
GRANT SELECT ON SEQUENCE neotoma_ops.quota_rejections_storage, neotoma_ops.quota_rejections_interpretations,
  neotoma_ops.quota_rejections_file_size TO service_role;

ALTER TABLE public.plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.storage_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_periods ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_drift_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Service role full access - plans" ON public.plans
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Users read plans" ON public.plans
  FOR SELECT TO authenticated USING (true);
CREATE POLICY "Service role full access - storage_usage" ON public.storage_usage
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Users read own storage_usage" ON public.storage_usage
  FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY "Service role full access - usage_periods" ON public.usage_periods
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Users read own usage_periods" ON public.usage_periods
  FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY "Service role full access - usage_drift_log" ON public.usage_drift_log
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- service_role included: on Supabase, default privileges hand it TRUNCATE, REFERENCES, TRIGGER (and MAINTAIN
-- on PostgreSQL 17) too, and
-- anon/authenticated the identity sequence; exactly what is needed is granted back.
REVOKE ALL ON TABLE public.plans, public.storage_usage, public.usage_periods, public.usage_drift_log
  FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE public.usage_drift_log_id_seq FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON TABLE public.plans, public.storage_usage, public.usage_periods TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.plans, public.storage_usage, public.usage_periods,
  public.usage_drift_log TO service_role;

-- Counter rows are born true (neotoma_ops.quota_usage_row_create: from the user's existing sources and runs), so
-- a user's first write after the upgrade is checked against everything they already hold. This deferred step
-- creates the rows of every user who already has sources or runs, in batches of 1000 users (each its own
-- short transaction) once the triggers are in place, so that reports and metrics show everyone at once.
INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement, repeat) VALUES
  ('0004_quotas', 1, 'create the usage counters of users who already have sources or runs',
   $$SELECT neotoma_ops.quota_create_missing_usage_rows($1::uuid, 1000)::text$$, true)
ON CONFLICT (migration, position) DO NOTHING;

-- Which interpretation run holds which quota unit. A run holds one unit of the billing period it was charged in:
-- quota_charged_at is when (NULL for runs from before this migration: they were charged when created, so
-- created_at stands in), quota_released_at when it stopped holding it (the timeout sweep gave it back, or the
-- run was moved to another user without a unit). Written only by the database (triggers on
-- interpretation_runs and the sweep, see sql/triggers/quotas/quota_interpretation_runs_mark.sql): reopening a run without
-- a unit charges a new one, moving a run moves its unit, and each charge is given back at most once.
-- Nullable and without default: the columns are added in the catalog only, and existing rows need no write.
ALTER TABLE public.interpretation_runs
  ADD COLUMN IF NOT EXISTS quota_charged_at  timestamptz,
  ADD COLUMN IF NOT EXISTS quota_released_at timestamptz;
COMMENT ON COLUMN public.interpretation_runs.quota_charged_at IS
  'When this run''s interpretation-quota unit was charged (NULL: created before v0.3.0, charged at created_at). Set by the database.';
COMMENT ON COLUMN public.interpretation_runs.quota_released_at IS
  'When this run stopped holding its quota unit (given back by the timeout sweep, or moved without one); NULL while it holds it.';

-- Schedules: the eager billing roll (hourly; the lazy roll on write keeps enforcement exact between runs) and the
-- nightly drift repair. Each job is one call of a function that guards itself with a try-advisory-lock.
SELECT cron.schedule('billing-period-reset', '7 * * * *', $$SELECT public.reset_billing_periods(10000)$$);
SELECT cron.schedule('storage-usage-reconcile', '17 3 * * *', $$SELECT public.reconcile_storage_usage()$$);

-- Down Migration
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'billing-period-reset';
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'storage-usage-reconcile';

ALTER TABLE public.interpretation_runs
  DROP COLUMN IF EXISTS quota_released_at,
  DROP COLUMN IF EXISTS quota_charged_at;

DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0004_quotas';
DROP TABLE IF EXISTS public.usage_drift_log;
DROP TABLE IF EXISTS public.usage_periods;
DROP TABLE IF EXISTS public.storage_usage;
DROP TABLE IF EXISTS public.plans;
DROP SEQUENCE IF EXISTS neotoma_ops.quota_rejections_storage;
DROP SEQUENCE IF EXISTS neotoma_ops.quota_rejections_interpretations;
DROP SEQUENCE IF EXISTS neotoma_ops.quota_rejections_file_size;

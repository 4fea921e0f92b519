-- Up Migration
-- Which interpretation run holds which quota unit. A run holds one unit of the billing period it was charged in:
-- quota_charged_at is when (NULL for runs from before this migration: they were charged when created, so
-- created_at stands in), quota_released_at when it stopped holding it (the timeout sweep gave it back, or the
-- run was moved to another user without a unit). Written only by the database (triggers on
-- interpretation_runs and the sweep, see sql/triggers/quota_interpretation_runs.sql): reopening a run without
-- a unit charges a new one, moving a run moves its unit, and each charge is given back at most once.
-- Nullable and without default: the columns are added in the catalog only, and existing rows need no write.
ALTER TABLE public.interpretation_runs
  ADD COLUMN IF NOT EXISTS quota_charged_at  timestamptz,
  ADD COLUMN IF NOT EXISTS quota_released_at timestamptz;
COMMENT ON COLUMN public.interpretation_runs.quota_charged_at IS
  'When this run''s interpretation-quota unit was charged (NULL: created before v0.3.0, charged at created_at). Set by the database.';
COMMENT ON COLUMN public.interpretation_runs.quota_released_at IS
  'When this run stopped holding its quota unit (given back by the timeout sweep, or moved without one); NULL while it holds it.';

-- Down Migration
-- the triggers that name these columns go first (sql/triggers/quota_interpretation_runs.sql; `migrate up`
-- puts them back)
DROP TRIGGER IF EXISTS quota_interpretation_runs_mark ON public.interpretation_runs;
DROP TRIGGER IF EXISTS quota_interpretation_runs_account ON public.interpretation_runs;
DROP FUNCTION IF EXISTS neotoma_ops.quota_interpretation_runs_mark_trg();
DROP FUNCTION IF EXISTS neotoma_ops.quota_interpretation_runs_account_trg();
ALTER TABLE public.interpretation_runs
  DROP COLUMN IF EXISTS quota_released_at,
  DROP COLUMN IF EXISTS quota_charged_at;

-- Operations: neotoma_ops.doctor() judges the database by what the project recorded it owns
-- (neotoma_ops.owned_objects, written by the migration runner): each change a live database really sees is one row
-- naming the object, what is wrong and how to put it back; pg_cron health and the metrics follow the record too.
BEGIN;
SELECT plan(22);

CREATE FUNCTION pg_temp.found(p_kind text, p_object text) RETURNS boolean LANGUAGE sql AS $$
  SELECT EXISTS (SELECT 1 FROM neotoma_ops.doctor(false) AS d WHERE d.kind = p_kind AND d.object = p_object) $$;

SELECT is((SELECT count(*)::int FROM neotoma_ops.doctor(false) WHERE kind IN ('missing', 'altered', 'disabled', 'invalid', 'row security', 'paused', 'grants')),
  0, 'a database as the migrations left it: nothing has drifted');
SELECT ok((SELECT count(*) FROM neotoma_ops.owned_objects WHERE definition IS NOT NULL) > 100,
  'the record holds what the migrations and SQL files created');
SELECT ok(EXISTS (SELECT 1 FROM neotoma_ops.owned_objects WHERE kind = 'trigger' AND identity = 'quota_sources_insert ON public.sources'
                  AND source = 'sql/triggers/quotas/quota_sources_insert.sql'),
  'a trigger is recorded as its SQL file''s');
SELECT ok(EXISTS (SELECT 1 FROM neotoma_ops.owned_objects WHERE kind = 'cron job' AND identity = 'upload-queue-processor'
                  AND source = '0005_upload-queue'),
  'a cron job is recorded as its migration''s');

-- an owner's ALTER TABLE ... DISABLE TRIGGER: quotas not enforced, deadlines not stamped
ALTER TABLE public.sources DISABLE TRIGGER quota_sources_insert;
ALTER TABLE public.interpretation_runs DISABLE TRIGGER interpretation_runs_stamp_timeout;
SELECT ok(pg_temp.found('disabled', 'trigger quota_sources_insert ON public.sources'), 'a disabled quota trigger is reported');
SELECT ok(pg_temp.found('disabled', 'trigger interpretation_runs_stamp_timeout ON public.interpretation_runs'),
  'a disabled deadline trigger is reported');
SELECT is((SELECT repair FROM neotoma_ops.doctor(false) WHERE object = 'trigger quota_sources_insert ON public.sources'),
  ARRAY['ALTER TABLE public.sources ENABLE TRIGGER quota_sources_insert'], '... with the statement that enables it again');

-- a dropped check and a dropped index
ALTER TABLE public.sources DROP CONSTRAINT sources_file_size_not_negative;
DROP INDEX public.upload_queue_claim_idx;
SELECT ok(pg_temp.found('missing', 'constraint sources_file_size_not_negative ON public.sources'), 'a dropped check is reported');
SELECT ok(pg_temp.found('missing', 'index public.upload_queue_claim_idx'), 'a dropped index is reported');
SELECT matches((SELECT repair[2] FROM neotoma_ops.doctor(false) WHERE object = 'index public.upload_queue_claim_idx'),
  '^CREATE INDEX CONCURRENTLY upload_queue_claim_idx ON public\.upload_queue ', '... rebuilt without blocking writers');

-- a cron job that runs something else, or never
SELECT cron.alter_job(jobid, command => 'SELECT 1') FROM cron.job WHERE jobname = 'upload-queue-processor';
SELECT cron.alter_job(jobid, schedule => '0 0 31 2 *') FROM cron.job WHERE jobname = 'stale-interpretation-cleanup';
SELECT ok(pg_temp.found('altered', 'cron job upload-queue-processor'), 'a cron job whose command changed is reported');
SELECT ok(pg_temp.found('altered', 'cron job stale-interpretation-cleanup'), 'a cron job whose schedule changed is reported');

-- hot-fixed functions
CREATE OR REPLACE FUNCTION public.check_storage_quota(p_user_id uuid, p_bytes bigint) RETURNS void
  LANGUAGE plpgsql SET search_path = '' AS $$ BEGIN END $$;
CREATE OR REPLACE FUNCTION public.cleanup_stale_interpretations() RETURNS integer
  LANGUAGE sql SET search_path = '' AS $$ SELECT 0 $$;
SELECT is((SELECT source FROM neotoma_ops.doctor(false) WHERE kind = 'altered' AND object = 'function public.check_storage_quota(uuid, bigint)'),
  'sql/functions/quotas/check_storage_quota.sql', 'a function with another body is reported, to be put back from its file');
SELECT ok(pg_temp.found('altered', 'function public.cleanup_stale_interpretations()'), 'so is the sweep''s');

-- row level security turned off, a grant the rules forbid
ALTER TABLE public.plans DISABLE ROW LEVEL SECURITY;
GRANT INSERT ON public.storage_usage TO anon;
SELECT ok(pg_temp.found('row security', 'table public.plans'), 'row level security turned off is reported');
SELECT is((SELECT problem FROM neotoma_ops.doctor(false) WHERE kind = 'grants' AND object = 'public.storage_usage'),
  'public.storage_usage: anon holds INSERT', 'a forbidden grant is reported once, by the privilege rules');
SELECT is((SELECT count(*)::int FROM neotoma_ops.doctor(false) WHERE kind = 'grants' AND object = 'public.plans'), 0,
  '... and row level security not twice');

-- the metrics count every problem by kind
SELECT is((SELECT value FROM public.ops_metrics() WHERE metric = 'doctor_problems' AND labels ->> 'kind' = 'disabled'), 2::float8,
  'ops_metrics(): doctor_problems{kind="disabled"}');
SELECT is((SELECT value FROM public.ops_metrics() WHERE metric = 'doctor_problems' AND labels ->> 'kind' = 'missing'), 2::float8,
  'ops_metrics(): doctor_problems{kind="missing"}');

-- pg_cron health covers the recorded jobs and any job that calls a function of the project, and no other
SELECT cron.schedule('operator-drain-now', '*/2 * * * *', 'SELECT public.process_upload_queue()');
SELECT cron.schedule('someone-elses-job', '*/2 * * * *', 'SELECT 1');
SELECT ok(EXISTS (SELECT 1 FROM public.cron_job_health() WHERE jobname = 'operator-drain-now'),
  'a job that calls a project function is watched');
SELECT ok(NOT EXISTS (SELECT 1 FROM public.cron_job_health() WHERE jobname = 'someone-elses-job'),
  'a job of someone else is not');
SELECT ok(EXISTS (SELECT 1 FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'), 'the recorded jobs are');

SELECT * FROM finish();
ROLLBACK;

-- The timeout sweep decides which runs give a unit back with a join written out for the whole batch; it must be
-- exactly neotoma_ops.quota_run_holds_unit's rule. Every combination that matters (released or not, charged in
-- the current period, before it, after it, without charge time or creation time, user without counter row,
-- period ended) is swept and compared with the function.
BEGIN;
SELECT plan(2);

INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
SELECT ('33000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, ('33000000-0000-4000-9000-' || lpad(u::text, 12, '0'))::uuid,
       repeat(u::text, 64), 'text/plain', 'k', 1
  FROM generate_series(1, 3) u;
-- user 3: its period has ended (rolled by the sweep before it decides)
UPDATE public.storage_usage SET billing_period_end = now() - interval '1 second', billing_period_start = now() - interval '1 month'
 WHERE user_id = '33000000-0000-4000-9000-000000000003';
-- user 2 loses its counter row
DELETE FROM public.storage_usage WHERE user_id = '33000000-0000-4000-9000-000000000002';

UPDATE public.interpretation_runs SET timeout_at = now() + interval '5 minutes'
 WHERE status IN ('pending', 'running') AND timeout_at < now();
ALTER TABLE public.interpretation_runs DISABLE TRIGGER quota_interpretation_runs_mark;
ALTER TABLE public.interpretation_runs DISABLE TRIGGER quota_interpretation_runs_insert;
INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status, created_at, quota_charged_at, quota_released_at)
SELECT ('33000000-0000-4000-9000-' || lpad(u::text, 12, '0'))::uuid, ('33000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid,
       '{}', 'running', c, q, rel
  FROM generate_series(1, 3) u,
       unnest(ARRAY[now(), now() - interval '40 days', NULL]) c,
       unnest(ARRAY[now(), now() - interval '40 days', now() + interval '40 days', NULL]) q,
       unnest(ARRAY[NULL, now() - interval '1 day']) rel;
ALTER TABLE public.interpretation_runs ENABLE TRIGGER quota_interpretation_runs_mark;
ALTER TABLE public.interpretation_runs ENABLE TRIGGER quota_interpretation_runs_insert;

-- the sweep rolls ended periods before it decides: so does the expectation
SELECT neotoma_ops.quota_roll_periods(ARRAY['33000000-0000-4000-9000-000000000003']::uuid[], now());
CREATE TEMP TABLE expected AS
SELECT r.id, neotoma_ops.quota_run_holds_unit(r.user_id, r.quota_charged_at, r.quota_released_at, r.created_at) AS holds
  FROM public.interpretation_runs r
 WHERE r.user_id::text LIKE '33000000-0000-4000-9000-%';
SELECT cmp_ok((SELECT count(*) FILTER (WHERE holds)::integer FROM expected), '>', 0, 'some of the runs hold a unit');

UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute' WHERE user_id::text LIKE '33000000-0000-4000-9000-%';
SELECT public.cleanup_stale_interpretations();
SELECT set_eq(
  $$SELECT id FROM public.interpretation_runs WHERE user_id::text LIKE '33000000-0000-4000-9000-%'
      AND quota_released_at = now() AND status = 'failed'$$,
  $$SELECT id FROM expected WHERE holds$$,
  'the sweep gives back the unit of exactly the runs quota_run_holds_unit says hold one');

SELECT * FROM finish();
ROLLBACK;

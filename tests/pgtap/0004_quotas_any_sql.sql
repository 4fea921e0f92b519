-- Accounting that stays true whatever SQL a client runs: TRUNCATE, runs reopened after their refund, runs moved
-- to another user, runs whose deadline is cleared or pushed out, and the PT413 message when both sizes round
-- to the same figure. Rule (docs/quotas.md): a run holds one unit of the period it was charged in; it is
-- charged when inserted, charged again when reopened without a unit, moves its unit when moved; the timeout
-- sweep gives back a unit at most once per charge; deleting or truncating runs gives nothing back.
BEGIN;
SELECT plan(27);

CREATE FUNCTION pg_temp.u(n integer) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT ('17000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.r(n integer) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT ('17000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.add_source(n integer, k text, bytes bigint DEFAULT 10) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  VALUES (pg_temp.u(n), md5(n || k) || md5(k || n), 'text/plain', 'k', bytes) RETURNING id $$;
CREATE FUNCTION pg_temp.add_run(n integer, run integer, st text DEFAULT 'running') RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.interpretation_runs (id, user_id, source_id, interpretation_config, status)
  SELECT pg_temp.r(run), pg_temp.u(n), s.id, '{}', st FROM public.sources s WHERE s.user_id = pg_temp.u(n) LIMIT 1
  RETURNING id $$;
CREATE FUNCTION pg_temp.used(n integer) RETURNS integer LANGUAGE sql AS $$
  SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = pg_temp.u(n) $$;
CREATE FUNCTION pg_temp.storage(n integer) RETURNS text LANGUAGE sql AS $$
  SELECT total_bytes || '/' || total_sources FROM public.storage_usage WHERE user_id = pg_temp.u(n) $$;
CREATE FUNCTION pg_temp.expire(run integer) RETURNS void LANGUAGE sql AS $$
  UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute' WHERE id = pg_temp.r(run) $$;
-- nothing else stale in this transaction's view
UPDATE public.interpretation_runs SET timeout_at = now() + interval '5 minutes'
 WHERE status IN ('pending', 'running') AND timeout_at < now();

SELECT pg_temp.add_source(1, 'a', 100);
SELECT pg_temp.add_source(1, 'b', 200);
SELECT pg_temp.add_source(2, 'a', 50);
SELECT pg_temp.add_run(1, 1);

-- 1. TRUNCATE ---------------------------------------------------------------------------------------------
SAVEPOINT before_truncate;
TRUNCATE public.interpretation_runs;
SELECT is(pg_temp.used(1), 1, 'TRUNCATE of interpretation_runs gives no unit back (as deleting runs does not)');
TRUNCATE public.sources CASCADE;
SELECT is(pg_temp.storage(1) || ' ' || pg_temp.storage(2), '0/0 0/0', 'TRUNCATE of sources: every user''s storage counters follow');
SELECT is_empty($$SELECT 1 FROM public.storage_usage WHERE total_bytes <> 0 OR total_sources <> 0$$,
  'no user keeps a byte that is gone');
SELECT lives_ok($$SELECT pg_temp.add_source(1, 'c', 104857600)$$, 'the next insert counts from zero');
ROLLBACK TO SAVEPOINT before_truncate;

-- 2. a run reopened after its refund is charged again; each charge is refunded at most once ---------------
SELECT pg_temp.expire(1);
SELECT is(public.cleanup_stale_interpretations(), 1, 'the sweep fails the run');
SELECT is(pg_temp.used(1), 0, 'and gives its unit back');
UPDATE public.interpretation_runs SET status = 'running' WHERE id = pg_temp.r(1);
SELECT is(pg_temp.used(1), 1, 'reopening it charges a unit again');
SELECT pg_temp.expire(1);
SELECT is(public.cleanup_stale_interpretations(), 1, 'it times out again');
SELECT is(pg_temp.used(1), 0, 'the second charge is refunded once: the count is back to 0, not -1');
UPDATE public.interpretation_runs SET status = 'completed' WHERE id = pg_temp.r(1);
SELECT is(pg_temp.used(1), 0, 'completing a refunded run charges nothing');
UPDATE public.interpretation_runs SET status = 'failed' WHERE id = pg_temp.r(1);
UPDATE public.interpretation_runs SET status = 'pending' WHERE id = pg_temp.r(1);
SELECT is(pg_temp.used(1), 1, 'reopened to pending: charged');
UPDATE public.interpretation_runs SET status = 'running' WHERE id = pg_temp.r(1);
SELECT is(pg_temp.used(1), 1, 'pending to running is the same run in flight: not charged twice');
UPDATE public.storage_usage SET interpretation_limit_month_override = 1 WHERE user_id = pg_temp.u(1);
SELECT pg_temp.expire(1);
SELECT is(public.cleanup_stale_interpretations(), 1, 'it times out once more (unit given back)');
SELECT pg_temp.add_run(1, 2, 'completed');
SELECT throws_ok($$UPDATE public.interpretation_runs SET status = 'running' WHERE id = pg_temp.r(1)$$, 'PT402', NULL,
  'reopening a run when the user is at the limit is refused like an insert');
SELECT is(pg_temp.used(1), 1, 'and changes nothing');

-- 3. a moved run moves its unit ---------------------------------------------------------------------------
SELECT pg_temp.add_source(3, 'a');
SELECT pg_temp.add_run(3, 3);
SELECT pg_temp.add_source(4, 'a');
SELECT is(pg_temp.used(3) || ' ' || pg_temp.used(4), '1 0', 'before the move the unit is user 3''s');
UPDATE public.interpretation_runs SET user_id = pg_temp.u(4) WHERE id = pg_temp.r(3);
SELECT is(pg_temp.used(3) || ' ' || pg_temp.used(4), '0 1', 'after it, user 4''s');
SELECT pg_temp.expire(3);
SELECT is(public.cleanup_stale_interpretations(), 1, 'the moved run times out');
SELECT is(pg_temp.used(3) || ' ' || pg_temp.used(4), '0 0', 'the refund goes to the user who holds the unit');
UPDATE public.storage_usage SET interpretation_limit_month_override = 0 WHERE user_id = pg_temp.u(4);
SELECT pg_temp.add_run(3, 4);
SELECT throws_ok($$UPDATE public.interpretation_runs SET user_id = pg_temp.u(4) WHERE id = pg_temp.r(4)$$, 'PT402', NULL,
  'moving a run to a user at their limit is refused like an insert');
SELECT is(pg_temp.used(3) || ' ' || pg_temp.used(4), '1 0', 'and changes nothing');

-- 4. the deadline of a run in flight -------------------------------------------------------------------------
SELECT throws_ok($$UPDATE public.interpretation_runs SET timeout_at = NULL WHERE id = pg_temp.r(4)$$, '22023', NULL,
  'an active run''s timeout_at cannot be cleared');
SELECT throws_ok($$UPDATE public.interpretation_runs SET timeout_at = now() + interval '1 day' WHERE id = pg_temp.r(4)$$,
  '22023', NULL, 'nor pushed beyond the configured run timeout');
SELECT lives_ok($$SELECT public.heartbeat_interpretation(pg_temp.r(4))$$, 'heartbeat_interpretation() pushes it as before');
SELECT lives_ok($$UPDATE public.interpretation_runs SET timeout_at = now() + interval '1 minute' WHERE id = pg_temp.r(4)$$,
  'bringing the deadline closer is allowed');
UPDATE public.interpretation_runs SET status = 'completed' WHERE id = pg_temp.r(4);
SELECT lives_ok($$UPDATE public.interpretation_runs SET timeout_at = NULL WHERE id = pg_temp.r(4)$$,
  'a finished run''s timeout_at is history and may be cleared');

-- 5. PT413 when both sizes round to the same figure -------------------------------------------------------------
SELECT throws_ok($$SELECT pg_temp.add_source(5, 'big', 104857601)$$, 'PT413',
  'File too large: 100 MiB + 1 byte exceeds the per-file limit of 100 MiB on plan free',
  'the message shows how much over the limit the file is when rounding would hide it');

SELECT * FROM finish();
ROLLBACK;

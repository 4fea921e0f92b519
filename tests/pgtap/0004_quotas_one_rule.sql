-- One place for each quota rule: a user's effective limits (neotoma_ops.effective_limit, inlined into every query
-- that uses it) and the usage report of any user (public.usage_report, read from storage_usage_report).
BEGIN;
SELECT plan(17);

CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  whole text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
    whole := whole || line || E'\n';
  END LOOP;
  RETURN whole;
END
$$;
CREATE FUNCTION pg_temp.h(k text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT md5(k) || md5(k || '.') $$;

-- effective_limit
SELECT is(neotoma_ops.effective_limit(5::bigint, 10::bigint), 5::bigint, 'an override wins over the plan''s limit');
SELECT is(neotoma_ops.effective_limit(NULL::bigint, 10::bigint), 10::bigint, 'without an override the plan''s limit applies');
SELECT is(neotoma_ops.effective_limit(NULL::integer, NULL::integer), NULL::integer, 'neither: unlimited (NULL)');
SELECT is(neotoma_ops.effective_limit(0::bigint, NULL::bigint), 0::bigint, 'an override of 0 on an unlimited plan allows nothing');
SELECT unalike(pg_temp.plan_of($$SELECT neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes)
                                   FROM public.storage_usage su JOIN public.plans p ON p.id = su.plan_id$$),
               '%effective_limit%', 'effective_limit is inlined: no function call is left in the plan');
SELECT alike(pg_temp.plan_of($$SELECT neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes)
                                 FROM public.storage_usage su JOIN public.plans p ON p.id = su.plan_id$$),
             '%COALESCE(su.storage_limit_bytes_override, p.storage_limit_bytes)%', 'it is planned as the coalesce it stands for');

-- usage_report: a user with a counter row gets exactly the view's row
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT 'a0000000-0000-4000-8000-000000000018', pg_temp.h('r1-' || g), 'text/plain', 'x', 100 * 1048576
  FROM generate_series(1, 9) AS g;  -- 900 MiB in files of the largest size plan free allows
SELECT is((SELECT (r.used_bytes, r.limit_human, r.state, r.percent_used, r.has_usage_row)::text
             FROM public.usage_report('a0000000-0000-4000-8000-000000000018') r),
          (SELECT (v.used_bytes, v.limit_human, v.state, v.percent_used, true)::text
             FROM public.storage_usage_report v WHERE v.user_id = 'a0000000-0000-4000-8000-000000000018'),
          'a user with a counter row: the view''s row');
SELECT is((SELECT state FROM public.usage_report('a0000000-0000-4000-8000-000000000018')), 'warning',
  '900 MiB of 1 GiB is a warning, as the view says');

-- a user whose sources exist but whose counter row does not (yet): the row their first write would start from
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('a0000000-0000-4000-8000-000000000019', pg_temp.h('r2'), 'text/plain', 'x', 3000),
       ('a0000000-0000-4000-8000-000000000019', pg_temp.h('r3'), 'text/plain', 'x', 4000);
DELETE FROM public.storage_usage WHERE user_id = 'a0000000-0000-4000-8000-000000000019';
SELECT is((SELECT (r.plan_id, r.used_bytes, r.total_sources, r.used_human, r.state, r.has_usage_row)::text
             FROM public.usage_report('a0000000-0000-4000-8000-000000000019') r),
          '(free,7000,2,"6.84 KiB",ok,f)', 'no counter row: born true from the user''s sources, on plan free');
SELECT is((SELECT count(*)::int FROM public.storage_usage WHERE user_id = 'a0000000-0000-4000-8000-000000000019'), 0,
  'and nothing was written');

-- a user who never wrote
SELECT is((SELECT (r.plan_id, r.used_bytes, r.limit_human, r.state, r.interpretations_used, r.interpretations_limit, r.has_usage_row)::text
             FROM public.usage_report('a0000000-0000-4000-8000-000000000020') r),
          '(free,0,"1.00 GiB",ok,0,100,f)', 'a user who never wrote: plan free, nothing used');
SELECT is((SELECT count(*)::int FROM public.storage_usage WHERE user_id = 'a0000000-0000-4000-8000-000000000020'), 0,
  'no counter row is left behind');
SELECT throws_ok($$SELECT * FROM public.usage_report(NULL)$$, '22023', 'p_user_id must not be NULL', 'NULL user: 22023');
SELECT ok(NOT has_function_privilege('anon', 'public.usage_report(uuid)', 'EXECUTE'), 'anon may not call usage_report');
SELECT ok(NOT has_function_privilege('authenticated', 'public.usage_report(uuid)', 'EXECUTE'),
  'authenticated may not call usage_report (the view shows a user their own row)');
SELECT ok(has_function_privilege('service_role', 'public.usage_report(uuid)', 'EXECUTE'), 'service_role may');
SELECT ok(NOT has_function_privilege('authenticated', 'neotoma_ops.effective_limit(anyelement, anyelement)', 'EXECUTE'),
  'effective_limit is internal');

SELECT * FROM finish();
ROLLBACK;

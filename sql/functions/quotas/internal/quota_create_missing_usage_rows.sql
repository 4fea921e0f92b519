-- requires: 0004_quotas
-- neotoma_ops.quota_create_missing_usage_rows(p_after, p_limit) → uuid
-- One batch of the upgrade's counter backfill (deferred step of migration 0100, run by `neotoma-ops migrate up`
-- until it returns NULL): takes the next p_limit users, in user_id order after p_after (from the start when
-- NULL), that have sources or interpretation runs, and creates the counter rows they lack, born true
-- (neotoma_ops.quota_usage_rows_create). Returns the last user of the batch, or NULL when none is left.
-- Each call is one short transaction that locks only the rows it creates, so writers keep going.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_create_missing_usage_rows(p_after uuid, p_limit integer)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_users uuid[];
BEGIN
  IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('quota_create_missing_usage_rows: p_limit must be between 1 and 100000, got %s',
                       coalesce(p_limit::text, 'NULL')),
      HINT = 'Pass the number of users per batch, e.g. 1000.';
  END IF;
  IF p_after IS NULL THEN
    SELECT array_agg(x.user_id ORDER BY x.user_id) INTO v_users FROM (
      SELECT u.user_id FROM (
        (SELECT DISTINCT s.user_id FROM public.sources s ORDER BY s.user_id LIMIT p_limit)
        UNION
        (SELECT DISTINCT r.user_id FROM public.interpretation_runs r ORDER BY r.user_id LIMIT p_limit)
      ) u ORDER BY u.user_id LIMIT p_limit) x;
  ELSE
    SELECT array_agg(x.user_id ORDER BY x.user_id) INTO v_users FROM (
      SELECT u.user_id FROM (
        (SELECT DISTINCT s.user_id FROM public.sources s WHERE s.user_id > p_after ORDER BY s.user_id LIMIT p_limit)
        UNION
        (SELECT DISTINCT r.user_id FROM public.interpretation_runs r WHERE r.user_id > p_after
          ORDER BY r.user_id LIMIT p_limit)
      ) u ORDER BY u.user_id LIMIT p_limit) x;
  END IF;
  IF v_users IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM neotoma_ops.quota_usage_rows_create(v_users);
  RETURN v_users[cardinality(v_users)];
END
$fn$;

COMMENT ON FUNCTION neotoma_ops.quota_create_missing_usage_rows(uuid, integer) IS
  'One batch of the upgrade backfill: creates missing counter rows of the next users with sources or runs; returns the last user (NULL: done).';

REVOKE ALL ON FUNCTION neotoma_ops.quota_create_missing_usage_rows(uuid, integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_create_missing_usage_rows(uuid, integer) TO service_role;

-- requires: 0007_operations
-- neotoma_ops.cron_schedule_period(p_schedule): the longest time between two runs of a pg_cron schedule,
-- for health checks. Knows the forms the project uses ('*/N * * * *', 'M * * * *', 'M */N * * *',
-- 'M H * * *', '* * * * *', pg_cron's 'N seconds'); anything with day, month or weekday fields is taken
-- as up to 31 days. Pure: same input, same answer.
CREATE OR REPLACE FUNCTION neotoma_ops.cron_schedule_period(p_schedule text)
RETURNS interval
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  f text[];
  m text[];
BEGIN
  IF p_schedule IS NULL THEN
    RETURN NULL;
  END IF;
  m := pg_catalog.regexp_match(p_schedule, '^\s*(\d+)\s+seconds?\s*$');
  IF m IS NOT NULL THEN
    RETURN pg_catalog.make_interval(secs => m[1]::integer);
  END IF;
  f := pg_catalog.regexp_split_to_array(pg_catalog.btrim(p_schedule), '\s+');
  IF pg_catalog.array_length(f, 1) <> 5 THEN
    RETURN interval '31 days';
  END IF;
  IF f[3] <> '*' OR f[4] <> '*' OR f[5] <> '*' THEN
    RETURN interval '31 days';
  END IF;
  IF f[1] = '*' AND f[2] = '*' THEN
    RETURN interval '1 minute';
  END IF;
  m := pg_catalog.regexp_match(f[1], '^\*/(\d+)$');
  IF m IS NOT NULL AND f[2] = '*' THEN
    RETURN pg_catalog.make_interval(mins => m[1]::integer);
  END IF;
  IF f[1] ~ '^\d+$' AND f[2] = '*' THEN
    RETURN interval '1 hour';
  END IF;
  m := pg_catalog.regexp_match(f[2], '^\*/(\d+)$');
  IF f[1] ~ '^\d+$' AND m IS NOT NULL THEN
    RETURN pg_catalog.make_interval(hours => m[1]::integer);
  END IF;
  RETURN interval '1 day';
END;
$$;

REVOKE ALL ON FUNCTION neotoma_ops.cron_schedule_period(text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.cron_schedule_period(text) TO service_role;

-- requires: 0005_upload-queue
-- public.upload_retry_delay(p_retry): how long after the failure before it retry n (1..5) is due:
-- 30 s · 2^(n−1) plus 0–10 % random jitter (so retries of jobs that failed together spread out), never more
-- than 10 minutes: 30, 60, 120, 240, 480 s (+ up to 3, 6, 12, 24, 48 s). Any other n → 22023.
CREATE OR REPLACE FUNCTION public.upload_retry_delay(p_retry integer)
RETURNS interval
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_base double precision;
BEGIN
  IF p_retry IS NULL OR p_retry < 1 OR p_retry > 5 THEN
    RAISE EXCEPTION 'p_retry must be a retry number between 1 and 5, got %', coalesce(p_retry::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Retry 1 follows the original upload; retry 5 is the last.';
  END IF;
  v_base := 30.0 * power(2, p_retry - 1);
  RETURN pg_catalog.make_interval(secs => least(v_base * (1.0 + 0.10 * pg_catalog.random()), 600.0));
END
$$;

REVOKE ALL ON FUNCTION public.upload_retry_delay(integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.upload_retry_delay(integer) TO service_role;

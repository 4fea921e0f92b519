-- requires: 0005_upload-queue
-- public.extend_upload_lease(p_job_id, p_lease_token, p_lease) → new locked_until, or NULL
-- For the holder of the current lease (job in progress, token matching): locked_until = now() + p_lease.
-- A stale or wrong token changes nothing and returns NULL (the worker must stop: the job is no longer its).
-- A holder whose lease ran out but was not yet rescued by process_upload_queue() still holds the job.
-- p_lease ≤ 0 or over 1 day → 22023.
CREATE OR REPLACE FUNCTION public.extend_upload_lease(p_job_id uuid, p_lease_token uuid,
                                                      p_lease interval DEFAULT '5 minutes')
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_until timestamptz;
  v_in_progress constant text := 'in_progress';  -- by primary key, see complete_upload_jobs
BEGIN
  IF p_lease IS NULL OR p_lease <= interval '0' OR p_lease > interval '1 day' THEN
    RAISE EXCEPTION 'p_lease must be a positive interval of at most 1 day, got %', coalesce(p_lease::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Extend by a little more than the time the upload still needs.';
  END IF;
  UPDATE public.upload_queue AS q
     SET locked_until = now() + p_lease, updated_at = now()
   WHERE q.id = p_job_id AND q.status = v_in_progress AND q.lease_token = p_lease_token
  RETURNING q.locked_until INTO v_until;
  RETURN v_until;
END
$$;

REVOKE ALL ON FUNCTION public.extend_upload_lease(uuid, uuid, interval) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.extend_upload_lease(uuid, uuid, interval) TO service_role;

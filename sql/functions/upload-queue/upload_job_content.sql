-- requires: 0005_upload-queue
-- public.upload_job_content(p_job_id, p_lease_token) → bytea
-- The queued bytes of a job, only for the holder of its current lease (job in progress, token matching);
-- NULL for a stale or wrong token, an unknown job, or a job that is not in progress.
CREATE OR REPLACE FUNCTION public.upload_job_content(p_job_id uuid, p_lease_token uuid)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_in_progress constant text := 'in_progress';  -- by primary key, see complete_upload_jobs
  v_content bytea;
BEGIN
  SELECT p.content INTO v_content
    FROM public.upload_queue AS q
    JOIN public.upload_queue_payloads AS p ON p.job_id = q.id
   WHERE q.id = p_job_id
     AND q.status = v_in_progress
     AND q.lease_token = p_lease_token;
  RETURN v_content;
END
$$;

REVOKE ALL ON FUNCTION public.upload_job_content(uuid, uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.upload_job_content(uuid, uuid) TO service_role;

-- public.upload_job_content(p_job_id, p_lease_token) → bytea
-- The queued bytes of a job, only for the holder of its current lease (job in progress, token matching);
-- NULL for a stale or wrong token, an unknown job, or a job that is not in progress.
CREATE OR REPLACE FUNCTION public.upload_job_content(p_job_id uuid, p_lease_token uuid)
RETURNS bytea
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
  SELECT p.content
    FROM public.upload_queue AS q
    JOIN public.upload_queue_payloads AS p ON p.job_id = q.id
   WHERE q.id = p_job_id
     AND q.status = 'in_progress'
     AND q.lease_token = p_lease_token;
$$;

REVOKE ALL ON FUNCTION public.upload_job_content(uuid, uuid) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.upload_job_content(uuid, uuid) TO service_role;

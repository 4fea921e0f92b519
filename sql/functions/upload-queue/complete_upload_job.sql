-- requires: 0005_upload-queue
-- public.complete_upload_job(p_job_id, p_lease_token, p_storage_url) → boolean
-- For the holder of the current lease: the job becomes completed, its bytes are deleted, its source becomes
-- storage_status 'uploaded' (and storage_url = p_storage_url when given). Returns true.
-- A stale or wrong token changes nothing and returns false. Repeating the call with the token that completed
-- the job (e.g. after a lost reply) changes nothing and returns true. (complete_upload_jobs() for one job.)
CREATE OR REPLACE FUNCTION public.complete_upload_job(p_job_id uuid, p_lease_token uuid, p_storage_url text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
  SELECT coalesce((SELECT c.completed
                     FROM public.complete_upload_jobs(ARRAY[p_job_id], ARRAY[p_lease_token], ARRAY[p_storage_url]) AS c),
                  false);
$$;

REVOKE ALL ON FUNCTION public.complete_upload_job(uuid, uuid, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.complete_upload_job(uuid, uuid, text) TO service_role;

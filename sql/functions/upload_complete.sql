-- public.complete_upload_job(p_job_id, p_lease_token, p_storage_url) → boolean
-- For the holder of the current lease: the job becomes completed, its bytes are deleted, its source becomes
-- storage_status 'uploaded' (and storage_url = p_storage_url when given). Returns true.
-- A stale or wrong token changes nothing and returns false. Repeating the call with the token that completed
-- the job (e.g. after a lost reply) changes nothing and returns true.
CREATE OR REPLACE FUNCTION public.complete_upload_job(p_job_id uuid, p_lease_token uuid, p_storage_url text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_source_id uuid;
BEGIN
  UPDATE public.upload_queue AS q
     SET status = 'completed', completed_at = now(), locked_until = NULL, updated_at = now()
   WHERE q.id = p_job_id AND q.status = 'in_progress' AND q.lease_token = p_lease_token
  RETURNING q.source_id INTO v_source_id;

  IF NOT FOUND THEN
    RETURN EXISTS (SELECT 1 FROM public.upload_queue AS q
                    WHERE q.id = p_job_id AND q.status = 'completed' AND q.lease_token = p_lease_token);
  END IF;

  DELETE FROM public.upload_queue_payloads AS p WHERE p.job_id = p_job_id;
  UPDATE public.sources AS s
     SET storage_status = 'uploaded',
         storage_url = coalesce(nullif(p_storage_url, ''), s.storage_url)
   WHERE s.id = v_source_id;
  PERFORM neotoma_ops.upload_queue_count('upload_completed_total', 1);
  RETURN true;
END
$$;

REVOKE ALL ON FUNCTION public.complete_upload_job(uuid, uuid, text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.complete_upload_job(uuid, uuid, text) TO service_role;

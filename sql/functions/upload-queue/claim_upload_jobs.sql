-- requires: 0005_upload-queue
-- public.claim_upload_jobs(p_worker_id, p_limit, p_lease) → the claimed jobs
-- Claims up to p_limit (1..1000) due pending jobs, oldest due first (next_retry_at, id), skipping rows another
-- session holds (FOR UPDATE SKIP LOCKED, served by the partial index upload_queue_claim_idx), and marks them
-- in_progress for p_worker_id with a fresh lease_token until now() + p_lease (> 0, ≤ 1 day). Every later call
-- about a job (upload_job_content, extend_upload_lease, complete_upload_job, fail_upload_job) must present
-- that token. The bytes are not returned: fetch them with upload_job_content(job_id, lease_token).
-- retry_count is the number of failed retries so far: this claim is retry retry_count + 1.
-- Bad arguments → 22023, nothing claimed. Same claim as claim_upload_jobs_with_content(), which can also return
-- small payloads with the claim.
CREATE OR REPLACE FUNCTION public.claim_upload_jobs(p_worker_id text, p_limit integer DEFAULT 10,
                                                    p_lease interval DEFAULT '5 minutes')
RETURNS TABLE (job_id uuid, lease_token uuid, source_id uuid, user_id uuid, bucket text, storage_path text,
               content_hash text, byte_size bigint, mime_type text, retry_count integer, locked_until timestamptz)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  -- One claim implementation: claim_upload_jobs_with_content() without inlined bytes.
  RETURN QUERY
  SELECT c.job_id, c.lease_token, c.source_id, c.user_id, c.bucket, c.storage_path, c.content_hash,
         c.byte_size, c.mime_type, c.retry_count, c.locked_until
    FROM public.claim_upload_jobs_with_content(p_worker_id, p_limit, p_lease, NULL, 0) AS c;
END
$$;

REVOKE ALL ON FUNCTION public.claim_upload_jobs(text, integer, interval) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.claim_upload_jobs(text, integer, interval) TO service_role;

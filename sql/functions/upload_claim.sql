-- public.claim_upload_jobs(p_worker_id, p_limit, p_lease) → the claimed jobs
-- Claims up to p_limit (1..1000) due pending jobs, oldest due first (next_retry_at, id), skipping rows another
-- session holds (FOR UPDATE SKIP LOCKED, served by the partial index upload_queue_claim_idx), and marks them
-- in_progress for p_worker_id with a fresh lease_token until now() + p_lease (> 0, ≤ 1 day). Every later call
-- about a job (upload_job_content, extend_upload_lease, complete_upload_job, fail_upload_job) must present
-- that token. The bytes are not returned: fetch them with upload_job_content(job_id, lease_token).
-- retry_count is the number of failed retries so far: this claim is retry retry_count + 1.
-- Bad arguments → 22023, nothing claimed.
CREATE OR REPLACE FUNCTION public.claim_upload_jobs(p_worker_id text, p_limit integer DEFAULT 10,
                                                    p_lease interval DEFAULT '5 minutes')
RETURNS TABLE (job_id uuid, lease_token uuid, source_id uuid, user_id uuid, bucket text, storage_path text,
               content_hash text, byte_size bigint, mime_type text, retry_count integer, locked_until timestamptz)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_claimed bigint;
BEGIN
  IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
    RAISE EXCEPTION 'p_worker_id must be a non-empty worker name' USING ERRCODE = '22023',
      HINT = 'Pass something that identifies the worker process, e.g. host:pid.';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
    RAISE EXCEPTION 'p_limit must be between 1 and 1000, got %', coalesce(p_limit::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Claim a batch the worker can finish within its lease.';
  END IF;
  IF p_lease IS NULL OR p_lease <= interval '0' OR p_lease > interval '1 day' THEN
    RAISE EXCEPTION 'p_lease must be a positive interval of at most 1 day, got %', coalesce(p_lease::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Use a lease a little longer than one upload; extend it with extend_upload_lease().';
  END IF;

  RETURN QUERY
  WITH due AS (
    SELECT q.id
      FROM public.upload_queue AS q
     WHERE q.status = 'pending' AND q.next_retry_at <= now()
     ORDER BY q.next_retry_at, q.id
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  ), claimed AS (
    UPDATE public.upload_queue AS q
       SET status = 'in_progress',
           lease_token = gen_random_uuid(),
           locked_by = p_worker_id,
           locked_until = now() + p_lease,
           updated_at = now()
      FROM due
     WHERE q.id = due.id
    RETURNING q.id, q.lease_token, q.source_id, q.user_id, q.bucket, q.storage_path, q.content_hash,
              q.byte_size, q.mime_type, q.retry_count, q.locked_until, q.next_retry_at
  )
  SELECT c.id, c.lease_token, c.source_id, c.user_id, c.bucket, c.storage_path, c.content_hash,
         c.byte_size, c.mime_type, c.retry_count, c.locked_until
    FROM claimed AS c
   ORDER BY c.next_retry_at, c.id;

  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  PERFORM neotoma_ops.upload_queue_count('upload_retries_total', v_claimed);
END
$$;

REVOKE ALL ON FUNCTION public.claim_upload_jobs(text, integer, interval) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.claim_upload_jobs(text, integer, interval) TO service_role;

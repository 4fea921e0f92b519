-- requires: 0005_upload-queue
-- public.claim_upload_jobs_with_content(p_worker_id, p_limit, p_lease, p_inline_max_bytes, p_inline_total_bytes)
--   → the claimed jobs, each with its bytes when small
-- Claims exactly like public.claim_upload_jobs() (same validation, order, SKIP LOCKED, fresh lease_token per job,
-- upload_retries_total counted), and in the same statement returns the queued bytes of the jobs whose
-- byte_size ≤ p_inline_max_bytes (0..64 MiB, default 1 MiB; NULL inlines nothing), as long as the running
-- sum of inlined bytes in claim order stays ≤ p_inline_total_bytes (0..256 MiB, default 16 MiB), so one
-- reply stays bounded. content is NULL for every other job: its holder reads the bytes with
-- upload_job_content() / upload_job_content_range() and its lease_token, as before. An empty payload is
-- returned as an empty bytea, never NULL. The bytes go only to the session that just took the lease (same
-- transaction), so fencing is unchanged. Saves one round trip and one transaction per small job.
-- Bad arguments → 22023, nothing claimed.
CREATE OR REPLACE FUNCTION public.claim_upload_jobs_with_content(p_worker_id text, p_limit integer DEFAULT 10,
                                                                 p_lease interval DEFAULT '5 minutes',
                                                                 p_inline_max_bytes integer DEFAULT 1048576,
                                                                 p_inline_total_bytes integer DEFAULT 16777216)
RETURNS TABLE (job_id uuid, lease_token uuid, source_id uuid, user_id uuid, bucket text, storage_path text,
               content_hash text, byte_size bigint, mime_type text, retry_count integer, locked_until timestamptz,
               content bytea)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
-- Walk upload_queue_claim_idx in claim order and stop after p_limit rows, whatever the queue's depth. Without
-- this, when due jobs are a small share of a table full of completed history, the generic plan intersects two
-- partial indexes in a bitmap and sorts every due job for each claim (6 ms instead of 0.4 ms with 10,000 due
-- jobs among 10,000,000 rows; docs/benchmarks.md, "Deep queues and long history").
SET enable_bitmapscan = off
-- The plan below is the same for every call: keep one cached plan instead of planning the claim again each time.
SET plan_cache_mode = force_generic_plan
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
  IF p_inline_max_bytes < 0 OR p_inline_max_bytes > 67108864 THEN
    RAISE EXCEPTION 'p_inline_max_bytes must be between 0 and 67108864 (64 MiB), got %', p_inline_max_bytes
      USING ERRCODE = '22023', HINT = 'Inline small payloads only (default 1 MiB); read large ones with upload_job_content_range().';
  END IF;
  IF p_inline_total_bytes IS NULL OR p_inline_total_bytes < 0 OR p_inline_total_bytes > 268435456 THEN
    RAISE EXCEPTION 'p_inline_total_bytes must be between 0 and 268435456 (256 MiB), got %',
      coalesce(p_inline_total_bytes::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Bound the bytes one claim returns (default 16 MiB).';
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
     WHERE q.id = ANY (ARRAY(SELECT due.id FROM due))  -- by primary key, also in the cached generic plan
    RETURNING q.id, q.lease_token, q.source_id, q.user_id, q.bucket, q.storage_path, q.content_hash,
              q.byte_size, q.mime_type, q.retry_count, q.locked_until, q.next_retry_at,
              q.byte_size <= p_inline_max_bytes AS small
  ), budgeted AS (
    SELECT c.*,
           c.small AND sum(CASE WHEN c.small THEN c.byte_size ELSE 0 END)
                         OVER (ORDER BY c.next_retry_at, c.id) <= p_inline_total_bytes AS inline
      FROM claimed AS c
  )
  SELECT b.id, b.lease_token, b.source_id, b.user_id, b.bucket, b.storage_path, b.content_hash,
         b.byte_size, b.mime_type, b.retry_count, b.locked_until,
         CASE WHEN b.inline THEN (SELECT p.content FROM public.upload_queue_payloads AS p WHERE p.job_id = b.id) END
    FROM budgeted AS b
   ORDER BY b.next_retry_at, b.id;

  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_retries_total', v_claimed);
END
$$;

REVOKE ALL ON FUNCTION public.claim_upload_jobs_with_content(text, integer, interval, integer, integer)
  FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.claim_upload_jobs_with_content(text, integer, interval, integer, integer) TO service_role;

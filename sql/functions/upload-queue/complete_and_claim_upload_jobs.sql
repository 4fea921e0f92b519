-- requires: 0005_upload-queue
-- public.complete_and_claim_upload_jobs(p_job_ids, p_lease_tokens, p_storage_urls, p_worker_id, p_limit, p_lease,
--                                       p_inline_max_bytes, p_inline_total_bytes)
--   → one row per completion element, then one row per claimed job
-- complete_upload_jobs(p_job_ids, p_lease_tokens, p_storage_urls), then claim_upload_jobs_with_content(p_worker_id,
-- p_limit, p_lease, p_inline_max_bytes, p_inline_total_bytes), in one call and one transaction: a worker whose
-- finished uploads free the slots it fills again records them and claims in one round trip and one commit.
-- Rows: first one per element of p_job_ids, in input order, with job_id and completed exactly as
-- complete_upload_jobs() gives them (the claim columns NULL); then the claimed jobs exactly as
-- claim_upload_jobs_with_content() returns them, in claim order, with completed NULL. Every rule is those two
-- functions' own (fencing by lease token per job, idempotent completion, claim order, SKIP LOCKED, inline limits,
-- counters). Bad arguments to either part → 22023 and nothing changes: no job completed, none claimed.
CREATE OR REPLACE FUNCTION public.complete_and_claim_upload_jobs(p_job_ids uuid[], p_lease_tokens uuid[],
                                                                 p_storage_urls text[], p_worker_id text,
                                                                 p_limit integer DEFAULT 10,
                                                                 p_lease interval DEFAULT '5 minutes',
                                                                 p_inline_max_bytes integer DEFAULT 1048576,
                                                                 p_inline_total_bytes integer DEFAULT 16777216)
RETURNS TABLE (job_id uuid, completed boolean, lease_token uuid, source_id uuid, user_id uuid, bucket text,
               storage_path text, content_hash text, byte_size bigint, mime_type text, retry_count integer,
               locked_until timestamptz, content bytea)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  RETURN QUERY
  SELECT c.job_id, c.completed, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::bigint,
         NULL::text, NULL::integer, NULL::timestamptz, NULL::bytea
    FROM public.complete_upload_jobs(p_job_ids, p_lease_tokens, p_storage_urls) AS c;

  RETURN QUERY
  SELECT j.job_id, NULL::boolean, j.lease_token, j.source_id, j.user_id, j.bucket, j.storage_path, j.content_hash,
         j.byte_size, j.mime_type, j.retry_count, j.locked_until, j.content
    FROM public.claim_upload_jobs_with_content(p_worker_id, p_limit, p_lease, p_inline_max_bytes, p_inline_total_bytes) AS j;
END
$$;

REVOKE ALL ON FUNCTION public.complete_and_claim_upload_jobs(uuid[], uuid[], text[], text, integer, interval, integer, integer)
  FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.complete_and_claim_upload_jobs(uuid[], uuid[], text[], text, integer, interval, integer, integer)
  TO service_role;

-- requires: 0005_upload-queue
-- public.upload_job_content_range(p_job_id, p_lease_token, p_offset, p_length) → bytea
-- A slice of the queued bytes (p_length bytes from 0-based p_offset; shorter or empty at the end), for the
-- holder of the current lease only; NULL for a stale or wrong token. Lets a worker stream a large payload to
-- storage in chunks instead of holding it whole: the payload column is STORAGE EXTERNAL, so a slice reads
-- only the TOAST chunks it covers. p_offset < 0, or p_length outside 1..67108864 (64 MiB) → 22023.
CREATE OR REPLACE FUNCTION public.upload_job_content_range(p_job_id uuid, p_lease_token uuid,
                                                           p_offset bigint, p_length integer)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_slice bytea;
  v_in_progress constant text := 'in_progress';  -- by primary key, see complete_upload_jobs
BEGIN
  IF p_offset IS NULL OR p_offset < 0 OR p_offset > 2147483647 THEN
    RAISE EXCEPTION 'p_offset must be a byte offset between 0 and 2147483647, got %', coalesce(p_offset::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Offsets start at 0; read the payload in order up to byte_size.';
  END IF;
  IF p_length IS NULL OR p_length < 1 OR p_length > 67108864 THEN
    RAISE EXCEPTION 'p_length must be between 1 and 67108864 (64 MiB), got %', coalesce(p_length::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Read large payloads in chunks of a few MiB.';
  END IF;
  -- at or past the end: an empty slice (the offset + 1 of the largest admitted offset would not fit an integer)
  SELECT CASE WHEN p_offset >= pg_catalog.octet_length(p.content) THEN '\x'::bytea
              ELSE pg_catalog.substr(p.content, (p_offset + 1)::integer, p_length) END INTO v_slice
    FROM public.upload_queue AS q
    JOIN public.upload_queue_payloads AS p ON p.job_id = q.id
   WHERE q.id = p_job_id
     AND q.status = v_in_progress
     AND q.lease_token = p_lease_token;
  RETURN v_slice;
END
$$;

REVOKE ALL ON FUNCTION public.upload_job_content_range(uuid, uuid, bigint, integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.upload_job_content_range(uuid, uuid, bigint, integer) TO service_role;

-- public.upload_job_content_slice(p_job_id, p_lease_token, p_offset, p_length) → bytea
-- Part of the queued bytes of a job: p_length bytes (1..64 MiB) from byte p_offset (0-based, ≥ 0), only for the
-- holder of its current lease (job in progress, token matching), like upload_job_content(); NULL for a stale or
-- wrong token, an unknown job, or a job that is not in progress; empty past the end. The payload column is stored
-- uncompressed out of line (STORAGE EXTERNAL), so a slice reads only its own TOAST chunks: the worker fetches a
-- large payload piece by piece instead of holding it twice (hex text and bytes) in memory.
-- Bad offset or length → 22023.
CREATE OR REPLACE FUNCTION public.upload_job_content_slice(p_job_id uuid, p_lease_token uuid, p_offset bigint,
                                                           p_length integer)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_slice bytea;
BEGIN
  IF p_offset IS NULL OR p_offset < 0 OR p_offset > 2147483646 THEN
    RAISE EXCEPTION 'p_offset must be between 0 and 2147483646, got %', coalesce(p_offset::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Pass the 0-based position of the first byte wanted.';
  END IF;
  IF p_length IS NULL OR p_length < 1 OR p_length > 67108864 THEN
    RAISE EXCEPTION 'p_length must be between 1 and 67108864 (64 MiB), got %', coalesce(p_length::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Read large payloads in slices of a few MiB.';
  END IF;
  SELECT pg_catalog.substr(p.content, (p_offset + 1)::integer, p_length)
    INTO v_slice
    FROM public.upload_queue AS q
    JOIN public.upload_queue_payloads AS p ON p.job_id = q.id
   WHERE q.id = p_job_id
     AND q.status = 'in_progress'
     AND q.lease_token = p_lease_token;
  RETURN v_slice;
END
$$;

REVOKE ALL ON FUNCTION public.upload_job_content_slice(uuid, uuid, bigint, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.upload_job_content_slice(uuid, uuid, bigint, integer) TO service_role;

-- requires: 0005_upload-queue
-- public.enqueue_upload(p_source_id, p_content, p_error_message, p_bucket) → job id
-- Called by ingest, in the transaction that inserted the source, when the original upload (attempt 0) failed.
-- Guarantees: the source exists (else 23503), sha256(p_content) equals sources.content_hash (else 22023 naming
-- both hashes) and its length equals sources.file_size, the size the quota was charged for (else 22023 naming
-- both sizes); p_bucket is a bucket name (else 22023); the bytes fit the largest object Storage accepts into
-- p_bucket where that is known (else PT413 FILE_TOO_LARGE, limit "storage": the job could only fail); nothing is
-- written on error. The source becomes
-- storage_status 'pending'; the job is pending with retry_count 0 and retry 1 due upload_retry_delay(1) (≈30 s)
-- from now; the bytes are stored in upload_queue_payloads; the job stores to p_bucket (default 'sources': the
-- bucket the first attempt used, so a retry lands beside it) at {user_id}/{content_hash}.
-- Idempotent per source: if the source already has a pending or in-progress job, that job's id is returned
-- and nothing changes; a failed job of the source is re-armed (as on first enqueue) and its id returned.
-- Concurrent calls for one source are serialized on the source row. Commit sends NOTIFY upload_queue with
-- {"event":"enqueued","job_id":…,"due_at":…} so a listening worker can time the first retry.
CREATE OR REPLACE FUNCTION public.enqueue_upload(p_source_id uuid, p_content bytea, p_error_message text DEFAULT NULL,
                                                 p_bucket text DEFAULT 'sources')
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_source public.sources%ROWTYPE;
  v_hash   text;
  v_job    public.upload_queue%ROWTYPE;
  v_due    timestamptz;
BEGIN
  IF p_source_id IS NULL THEN
    RAISE EXCEPTION 'p_source_id must not be NULL' USING ERRCODE = '23502',
      HINT = 'Pass the id of the sources row whose bytes are to be uploaded.';
  END IF;
  IF p_content IS NULL THEN
    RAISE EXCEPTION 'p_content must not be NULL' USING ERRCODE = '23502',
      HINT = 'Pass the bytes of the source (their SHA-256 must equal sources.content_hash).';
  END IF;

  IF p_bucket IS NULL OR p_bucket !~ '^[^/]{1,100}$' THEN
    RAISE EXCEPTION 'p_bucket must be a storage bucket name of 1 to 100 characters without "/", got %',
      coalesce(pg_catalog.quote_literal(p_bucket), 'NULL') USING ERRCODE = '22023',
      HINT = 'Pass the bucket the first upload attempt used (sources by default): a retry stores the bytes there too.';
  END IF;

  SELECT * INTO v_source FROM public.sources AS s WHERE s.id = p_source_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'source % does not exist (p_source_id)', p_source_id USING ERRCODE = '23503',
      HINT = 'Insert the sources row (storage_status ''pending'') before enqueueing its bytes, in the same transaction.';
  END IF;

  v_hash := pg_catalog.encode(pg_catalog.sha256(p_content), 'hex');
  IF v_hash IS DISTINCT FROM v_source.content_hash THEN
    RAISE EXCEPTION 'p_content does not match source %: sha256(p_content) = %, sources.content_hash = %',
      p_source_id, v_hash, v_source.content_hash USING ERRCODE = '22023',
      HINT = 'Enqueue exactly the bytes that were hashed into sources.content_hash.';
  END IF;

  IF pg_catalog.octet_length(p_content) <> v_source.file_size THEN
    RAISE EXCEPTION 'p_content is % bytes but source''s file_size is % bytes: the quota was charged for file_size',
      pg_catalog.octet_length(p_content), v_source.file_size USING ERRCODE = '22023',
      DETAIL = pg_catalog.jsonb_build_object('source_id', p_source_id, 'content_bytes', pg_catalog.octet_length(p_content),
                                             'file_size', v_source.file_size)::text,
      HINT = 'Enqueue exactly the bytes of the source; if the size recorded was wrong, correct sources.file_size first.';
  END IF;

  PERFORM neotoma_ops.quota_check_storage_upload_limit(v_source.user_id, p_bucket, pg_catalog.octet_length(p_content));

  SELECT * INTO v_job FROM public.upload_queue AS q
   WHERE q.source_id = p_source_id AND q.status IN ('pending', 'in_progress', 'failed')
     FOR UPDATE;

  IF FOUND AND v_job.status IN ('pending', 'in_progress') THEN
    RETURN v_job.id;
  END IF;

  v_due := now() + public.upload_retry_delay(1);

  IF FOUND THEN
    -- a failed job of this source: start its count again with these bytes
    UPDATE public.upload_queue AS q
       SET status = 'pending', retry_count = 0, next_retry_at = v_due, bucket = p_bucket,
           lease_token = NULL, locked_by = NULL, locked_until = NULL, failed_at = NULL,
           error_message = coalesce(p_error_message, q.error_message), updated_at = now()
     WHERE q.id = v_job.id;
    INSERT INTO public.upload_queue_payloads AS p (job_id, content) VALUES (v_job.id, p_content)
      ON CONFLICT (job_id) DO UPDATE SET content = EXCLUDED.content, created_at = now();
  ELSE
    INSERT INTO public.upload_queue (user_id, source_id, bucket, storage_path, content_hash, byte_size, mime_type,
                                     status, retry_count, next_retry_at, error_message)
    VALUES (v_source.user_id, v_source.id, p_bucket, neotoma_ops.storage_key(v_source.user_id, v_source.content_hash),
            v_source.content_hash, pg_catalog.octet_length(p_content), v_source.mime_type,
            'pending', 0, v_due, p_error_message)
    RETURNING * INTO v_job;
    INSERT INTO public.upload_queue_payloads (job_id, content) VALUES (v_job.id, p_content);
  END IF;

  UPDATE public.sources AS s SET storage_status = 'pending' WHERE s.id = p_source_id AND s.storage_status <> 'pending';
  PERFORM neotoma_ops.upload_queue_counter_add('upload_enqueued_total', 1);
  PERFORM pg_catalog.pg_notify('upload_queue',
    pg_catalog.jsonb_build_object('event', 'enqueued', 'job_id', v_job.id, 'due_at',
      pg_catalog.to_char(v_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text);
  RETURN v_job.id;
END
$$;

REVOKE ALL ON FUNCTION public.enqueue_upload(uuid, bytea, text, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.enqueue_upload(uuid, bytea, text, text) TO service_role;

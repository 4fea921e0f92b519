-- requires: 0005_upload-queue
-- public.requeue_upload_job(p_job_id) → job id
-- Operator action for a failed job: retry_count back to 0, due now (the next claim is retry 1), source back to
-- storage_status 'pending'; the kept bytes are used. Unknown job → P0002; a job that is not failed → 55000
-- (nothing changed); a failed job whose bytes are gone → 55000. Commit sends NOTIFY upload_queue.
CREATE OR REPLACE FUNCTION public.requeue_upload_job(p_job_id uuid)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_job public.upload_queue%ROWTYPE;
BEGIN
  SELECT * INTO v_job FROM public.upload_queue AS q WHERE q.id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'upload job % does not exist', coalesce(p_job_id::text, 'NULL') USING ERRCODE = 'P0002',
      HINT = 'List failed jobs with: SELECT id, source_id, error_message FROM public.upload_queue WHERE status = ''failed''.';
  END IF;
  IF v_job.status <> 'failed' THEN
    RAISE EXCEPTION 'upload job % is %, not failed; nothing changed', p_job_id, v_job.status USING ERRCODE = '55000',
      HINT = 'Only failed jobs can be requeued; pending and in-progress jobs are still being retried, completed ones are stored.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.upload_queue_payloads AS p WHERE p.job_id = p_job_id) THEN
    RAISE EXCEPTION 'upload job % has no queued bytes left; nothing changed', p_job_id USING ERRCODE = '55000',
      HINT = 'Enqueue the bytes again with enqueue_upload(source_id, content).';
  END IF;

  UPDATE public.upload_queue AS q
     SET status = 'pending', retry_count = 0, next_retry_at = now(),
         lease_token = NULL, locked_by = NULL, locked_until = NULL, failed_at = NULL, updated_at = now()
   WHERE q.id = p_job_id;
  UPDATE public.sources AS s SET storage_status = 'pending' WHERE s.id = v_job.source_id;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_requeued_total', 1);
  PERFORM pg_catalog.pg_notify('upload_queue',
    pg_catalog.jsonb_build_object('event', 'requeued', 'job_id', p_job_id, 'due_at',
      pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text);
  RETURN p_job_id;
END
$$;

REVOKE ALL ON FUNCTION public.requeue_upload_job(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.requeue_upload_job(uuid) TO service_role;

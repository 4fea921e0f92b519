-- requires: 0005_upload-queue
-- public.retry_upload_job_now(p_job_id) → job id
-- Operator action for a pending job: its next retry is due now instead of after the rest of its backoff
-- (storage is known to be back, or a test of the pipeline should not wait). Guarantees: only the wait changes —
-- retry_count and max_retries stay, so the next claim is still retry retry_count + 1 and the retry budget is not
-- extended; a job already due keeps its place in line (next_retry_at is only ever brought forward). Commit sends
-- NOTIFY upload_queue, which wakes a listening worker. Anything but a pending job changes nothing and raises
-- 55000 with what to do instead (in progress: a worker holds it; failed: requeue_upload_job; completed: stored);
-- unknown job → P0002; NULL → 22023.
CREATE OR REPLACE FUNCTION public.retry_upload_job_now(p_job_id uuid)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_job public.upload_queue%ROWTYPE;
BEGIN
  IF p_job_id IS NULL THEN
    RAISE EXCEPTION 'retry_upload_job_now: p_job_id must not be NULL' USING ERRCODE = '22023',
      HINT = 'Pass the id of a pending upload job.';
  END IF;
  SELECT * INTO v_job FROM public.upload_queue AS q WHERE q.id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'upload job % does not exist', p_job_id USING ERRCODE = 'P0002',
      HINT = 'List pending jobs with: SELECT id, source_id, retry_count, next_retry_at FROM public.upload_queue WHERE status = ''pending''.';
  END IF;
  IF v_job.status <> 'pending' THEN
    RAISE EXCEPTION 'upload job % is %, not pending; nothing changed', p_job_id, v_job.status USING ERRCODE = '55000',
      HINT = CASE v_job.status
               WHEN 'in_progress' THEN pg_catalog.format('Worker %s is retrying it now (lease until %s); if that worker '
                 'died, process_upload_queue() puts the job back in the queue once the lease has ended.',
                 v_job.locked_by, v_job.locked_until)
               WHEN 'failed' THEN 'A failed job goes back in the queue with requeue_upload_job(job_id) '
                 '(neotoma-ops requeue <job-id>).'
               ELSE 'Its object is stored: there is nothing to retry.'
             END;
  END IF;

  UPDATE public.upload_queue AS q
     SET next_retry_at = LEAST(q.next_retry_at, now()), updated_at = now()
   WHERE q.id = p_job_id;
  PERFORM pg_catalog.pg_notify('upload_queue',
    pg_catalog.jsonb_build_object('event', 'retry_now', 'job_id', p_job_id, 'due_at',
      pg_catalog.to_char(LEAST(v_job.next_retry_at, now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text);
  RETURN p_job_id;
END
$$;

REVOKE ALL ON FUNCTION public.retry_upload_job_now(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.retry_upload_job_now(uuid) TO service_role;

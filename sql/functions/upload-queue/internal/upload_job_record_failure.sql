-- requires: 0005_upload-queue
-- neotoma_ops.upload_job_record_failure(p_job_id, p_error_message, p_retryable) → 'pending' | 'failed' | NULL
-- The one place that decides what a failed retry means (docs/upload-queue.md), used by fail_upload_job() and by
-- process_upload_queue() for expired leases. For a job in progress: retry_count + 1; if retryable and retries
-- remain, the job is pending again and retry n+1 is due upload_retry_delay(n+1) from now; otherwise the job
-- is failed, its source storage_status 'failed', its bytes kept for requeue_upload_job(). Lease fields are
-- cleared (token and holder are kept on a failed job for the record). NULL when the job is not in progress.
-- The caller checks the lease token; internal, not for clients.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_job_record_failure(p_job_id uuid, p_error_message text, p_retryable boolean)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_in_progress constant text := 'in_progress';  -- by primary key, see complete_upload_jobs
  v_job   public.upload_queue%ROWTYPE;
  v_retry integer;
  v_error text := coalesce(nullif(p_error_message, ''), 'upload failed (no error message given)');
BEGIN
  SELECT * INTO v_job FROM public.upload_queue AS q
   WHERE q.id = p_job_id AND q.status = v_in_progress
     FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  v_retry := v_job.retry_count + 1;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_retry_failures_total', 1);

  IF coalesce(p_retryable, true) AND v_retry < v_job.max_retries THEN
    UPDATE public.upload_queue AS q
       SET status = 'pending',
           retry_count = v_retry,
           next_retry_at = now() + public.upload_retry_delay(v_retry + 1),
           lease_token = NULL,
           locked_by = NULL,
           locked_until = NULL,
           error_message = v_error,
           updated_at = now()
     WHERE q.id = p_job_id;
    RETURN 'pending';
  END IF;

  UPDATE public.upload_queue AS q
     SET status = 'failed',
         retry_count = v_retry,
         locked_until = NULL,
         error_message = v_error,
         failed_at = now(),
         updated_at = now()
   WHERE q.id = p_job_id;
  UPDATE public.sources AS s SET storage_status = 'failed' WHERE s.id = v_job.source_id;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_terminal_failures_total', 1);
  RETURN 'failed';
END
$$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_job_record_failure(uuid, text, boolean) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_job_record_failure(uuid, text, boolean) TO service_role;

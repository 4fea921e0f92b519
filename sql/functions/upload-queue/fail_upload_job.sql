-- requires: 0005_upload-queue
-- public.fail_upload_job(p_job_id, p_lease_token, p_error_message, p_retryable) → boolean
-- For the holder of the current lease: records a failed retry (docs/upload-queue.md): retry_count + 1; when retryable
-- and retries remain, the job is pending and retry n+1 due upload_retry_delay(n+1) from now (60, 120, 240,
-- 480 s after retries 1..4); otherwise (retry 5 failed, or p_retryable false) the job is failed, the source
-- storage_status 'failed', and the bytes are kept for requeue_upload_job(). Returns true.
-- A stale or wrong token changes nothing and returns false.
CREATE OR REPLACE FUNCTION public.fail_upload_job(p_job_id uuid, p_lease_token uuid, p_error_message text,
                                                  p_retryable boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_in_progress constant text := 'in_progress';  -- by primary key, see complete_upload_jobs
BEGIN
  PERFORM 1 FROM public.upload_queue AS q
    WHERE q.id = p_job_id AND q.status = v_in_progress AND q.lease_token = p_lease_token
      FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  RETURN neotoma_ops.upload_job_record_failure(p_job_id, p_error_message, p_retryable) IS NOT NULL;
END
$$;

REVOKE ALL ON FUNCTION public.fail_upload_job(uuid, uuid, text, boolean) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.fail_upload_job(uuid, uuid, text, boolean) TO service_role;

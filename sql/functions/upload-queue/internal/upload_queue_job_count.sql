-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_job_count(p_status): the number of upload_queue rows in one status, read through
-- that status's partial index (an index-only scan), so the cost follows the rows in that status and never
-- the whole table, even when most rows are completed (where a sequential scan would otherwise be chosen).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_job_count(p_status text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
SET enable_seqscan = off
AS $$
BEGIN
  CASE p_status
    WHEN 'pending' THEN
      RETURN (SELECT count(*) FROM public.upload_queue AS q WHERE q.status = 'pending' AND q.next_retry_at IS NOT NULL);
    WHEN 'in_progress' THEN
      RETURN (SELECT count(*) FROM public.upload_queue AS q WHERE q.status = 'in_progress' AND q.locked_until IS NOT NULL);
    WHEN 'completed' THEN
      RETURN (SELECT count(*) FROM public.upload_queue AS q WHERE q.status = 'completed' AND q.completed_at IS NOT NULL);
    WHEN 'failed' THEN
      RETURN (SELECT count(*) FROM public.upload_queue AS q WHERE q.status = 'failed' AND q.failed_at IS NOT NULL);
    ELSE
      RAISE EXCEPTION 'p_status must be one of pending, in_progress, completed, failed; got %', p_status
        USING ERRCODE = '22023';
  END CASE;
END;
$$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_job_count(text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_job_count(text) TO service_role;

-- requires: 0005_upload-queue
-- public.complete_upload_jobs(p_job_ids, p_lease_tokens, p_storage_urls) → (job_id, completed) per input element
-- Batch form of complete_upload_job(), fenced per job: element i completes job p_job_ids[i] only if
-- p_lease_tokens[i] is that job's current lease token (job in progress). For each job completed: the job
-- becomes completed, its bytes are deleted, its source becomes storage_status 'uploaded' (and storage_url =
-- p_storage_urls[i] when given and not empty). A stale or wrong token changes nothing for that job and gives
-- completed = false; the other jobs of the batch are not affected. Repeating an element with the token that
-- completed the job (e.g. after a lost reply) changes nothing and gives true. One row per input element, in
-- input order. Up to 1000 elements; the arrays must have the same length (p_storage_urls may be NULL), else
-- 22023 and nothing changes. upload_completed_total counts the jobs completed, once per call.
CREATE OR REPLACE FUNCTION public.complete_upload_jobs(p_job_ids uuid[], p_lease_tokens uuid[],
                                                       p_storage_urls text[] DEFAULT NULL)
RETURNS TABLE (job_id uuid, completed boolean)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
-- The plans below are the same for every call: keep one cached plan instead of planning them again each time.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
  v_n    integer := coalesce(cardinality(p_job_ids), 0);
  v_done uuid[];  -- lease tokens of the jobs this call completed (a token names one lease of one job)
  -- A parameter, not a literal, in the generic plan: the planner then cannot use the partial index on
  -- in-progress jobs (which it would think tiny, and which holds the dead entries of every job completed since
  -- the last vacuum) and reads the jobs by primary key.
  v_in_progress constant text := 'in_progress';
BEGIN
  IF p_job_ids IS NULL OR p_lease_tokens IS NULL THEN
    RAISE EXCEPTION 'p_job_ids and p_lease_tokens must not be NULL' USING ERRCODE = '22023',
      HINT = 'Pass one lease token per job id (empty arrays complete nothing).';
  END IF;
  IF v_n > 1000 THEN
    RAISE EXCEPTION 'p_job_ids may hold at most 1000 jobs, got %', v_n USING ERRCODE = '22023',
      HINT = 'Complete in batches of at most 1000.';
  END IF;
  IF cardinality(p_lease_tokens) <> v_n OR (p_storage_urls IS NOT NULL AND cardinality(p_storage_urls) <> v_n) THEN
    RAISE EXCEPTION 'p_lease_tokens (%) and p_storage_urls (%) must have as many elements as p_job_ids (%)',
      cardinality(p_lease_tokens), coalesce(cardinality(p_storage_urls)::text, 'NULL'), v_n
      USING ERRCODE = '22023', HINT = 'Element i of each array describes the same job.';
  END IF;

  -- One statement: the jobs (fenced by token), their bytes and their sources.
  WITH input AS (
    SELECT i.job_id, i.lease_token, i.storage_url
      FROM unnest(p_job_ids, p_lease_tokens, coalesce(p_storage_urls, array_fill(NULL::text, ARRAY[v_n])))
           AS i(job_id, lease_token, storage_url)
  ), done AS (
    UPDATE public.upload_queue AS q
       SET status = 'completed', completed_at = now(), locked_until = NULL, updated_at = now()
      FROM input AS i
     WHERE q.id = i.job_id AND q.id = ANY (p_job_ids)  -- by primary key, not by the in-progress index
       AND q.status = v_in_progress AND q.lease_token = i.lease_token
    RETURNING q.id, q.lease_token, q.source_id, i.storage_url
  ), gone AS (
    DELETE FROM public.upload_queue_payloads AS p
     USING done AS d
     WHERE p.job_id = d.id
  ), stored AS (
    UPDATE public.sources AS s
       SET storage_status = 'uploaded',
           storage_url = coalesce(nullif(d.storage_url, ''), s.storage_url)
      FROM done AS d
     WHERE s.id = d.source_id
  )
  SELECT array_agg(d.lease_token) INTO v_done FROM done AS d;

  PERFORM neotoma_ops.upload_queue_counter_add('upload_completed_total', coalesce(cardinality(v_done), 0));

  RETURN QUERY
  SELECT i.job_id,
         coalesce(i.lease_token = ANY (v_done), false)
         OR EXISTS (SELECT 1 FROM public.upload_queue AS q
                     WHERE q.id = i.job_id AND q.status = 'completed' AND q.lease_token = i.lease_token)
    FROM unnest(p_job_ids, p_lease_tokens) WITH ORDINALITY AS i(job_id, lease_token, ord)
   ORDER BY i.ord;
END
$$;

REVOKE ALL ON FUNCTION public.complete_upload_jobs(uuid[], uuid[], text[]) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.complete_upload_jobs(uuid[], uuid[], text[]) TO service_role;

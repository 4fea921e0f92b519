-- requires: 0004_quotas
-- public.storage_upload_limit(p_bucket) → (limit_bytes, limited_by)
-- The largest object Storage accepts into p_bucket, where the database can know it: the lower of the bucket's own
-- file_size_limit (storage.buckets, where the storage schema exists, as on Supabase) and the platform's global
-- upload limit an operator recorded (neotoma_ops.storage_settings.upload_limit_bytes). limited_by names which one
-- (`bucket sources file_size_limit`, `the global upload limit`); both NULL when neither is known.
CREATE OR REPLACE FUNCTION public.storage_upload_limit(p_bucket text DEFAULT 'sources',
                                                       OUT limit_bytes bigint, OUT limited_by text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  v_bucket bigint;
  v_global bigint;
BEGIN
  IF pg_catalog.to_regclass('storage.buckets') IS NOT NULL THEN
    -- a fixed query, p_bucket a parameter; dynamic so that the function is created where Storage is not
    EXECUTE 'SELECT file_size_limit FROM storage.buckets WHERE id = $1' INTO v_bucket USING p_bucket;
  END IF;
  IF pg_catalog.to_regclass('neotoma_ops.storage_settings') IS NOT NULL THEN  -- absent below migration 0009
    SELECT s.upload_limit_bytes INTO v_global FROM neotoma_ops.storage_settings AS s;
  END IF;
  IF v_bucket IS NOT NULL AND (v_global IS NULL OR v_bucket <= v_global) THEN
    limit_bytes := v_bucket;
    limited_by := pg_catalog.format('bucket %s file_size_limit', p_bucket);
  ELSIF v_global IS NOT NULL THEN
    limit_bytes := v_global;
    limited_by := 'the global upload limit';
  END IF;
END
$$;

REVOKE ALL ON FUNCTION public.storage_upload_limit(text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.storage_upload_limit(text) TO service_role;

-- requires: 0003_base-schema
-- neotoma_ops.storage_key(p_user_id, p_content_hash) → text: where a source's bytes live in its bucket,
-- `{user_id}/{content_hash}` (content-addressed, so storing the same bytes twice is harmless). The one place
-- that builds it: ingest (the direct upload and sources.storage_url) and enqueue_upload (the queue's
-- storage_path) both take it from here. Inlinable SQL, pure.
CREATE OR REPLACE FUNCTION neotoma_ops.storage_key(p_user_id uuid, p_content_hash text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
AS $$
  SELECT p_user_id::text || '/' || p_content_hash
$$;

REVOKE ALL ON FUNCTION neotoma_ops.storage_key(uuid, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.storage_key(uuid, text) TO service_role;

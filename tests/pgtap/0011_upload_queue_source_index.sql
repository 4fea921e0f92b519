-- Deleting a source finds its upload jobs through an index whatever their status (the ON DELETE CASCADE of
-- upload_queue.source_id), and every foreign key neotoma-ops records has an index its checks and cascades use.
BEGIN;
SELECT plan(4);

SELECT is(pg_get_indexdef('public.upload_queue_source_id_idx'::regclass),
  'CREATE INDEX upload_queue_source_id_idx ON public.upload_queue USING btree (source_id)',
  'upload_queue_source_id_idx holds every job, by source');
SELECT is((SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.upload_queue_source_id_idx'::regclass), true,
  'the index built by the deferred step is valid');

-- from the record: each recorded foreign key's columns lead a valid index without a predicate
SELECT is((SELECT array_agg(o.identity ORDER BY o.identity)
             FROM neotoma_ops.owned_objects AS o
             JOIN pg_constraint AS c
               ON c.contype = 'f' AND o.identity = pg_catalog.format('%I ON %s', c.conname, c.conrelid::regclass::text)
            WHERE o.kind = 'constraint'
              AND NOT EXISTS (SELECT 1 FROM pg_index AS i
                               WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
                                 AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey)),
  NULL, 'every foreign key neotoma-ops recorded has an index leading with its columns');

-- the lookup the cascade runs (one source among a long completed history) uses it
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, '44444444-4444-4444-4444-444444444444',
       encode(sha256(convert_to(g::text, 'UTF8')), 'hex'), 'text/plain', 'x', 1
  FROM generate_series(1, 2000) AS g;
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status, completed_at)
SELECT s.user_id, s.id, 'p', s.content_hash, 1, 'text/plain', 'completed', now()
  FROM public.sources AS s WHERE s.user_id = '44444444-4444-4444-4444-444444444444';
ANALYZE public.upload_queue;
SET LOCAL plan_cache_mode = force_generic_plan;
PREPARE cascade_lookup(uuid) AS DELETE FROM ONLY public.upload_queue WHERE source_id = $1;
CREATE FUNCTION pg_temp.plan_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text; r text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql LOOP r := r || l || E'\n'; END LOOP;
  RETURN r;
END $$;
SELECT matches(pg_temp.plan_of($$EXECUTE cascade_lookup('00000000-0000-0000-0000-000000000001')$$),
  'upload_queue_source_id_idx', 'deleting a source looks its jobs up in upload_queue_source_id_idx');
DEALLOCATE cascade_lookup;

SELECT * FROM finish();
ROLLBACK;

-- requires: 0007_operations
-- neotoma_ops.doctor(p_thorough DEFAULT true) → (kind, object, problem, fix, repair, source)
-- Everything about the database that is not as neotoma-ops left it, one row per problem, judged by what the
-- project recorded it owns (neotoma_ops.owned_objects) and by its rules, never by a list kept elsewhere:
--   missing / altered       an object it created, or changed, is gone or defined otherwise (a hot-fixed function,
--                           an edited cron job, a dropped index or check);
--   disabled / invalid / not validated / row security / paused
--                           a trigger disabled, an index invalid, a check not validated, row level security off,
--                           a cron job paused;
--   grants                  a grant its privilege rules forbid (neotoma_ops.privilege_problems());
--   cron job failing        a job that calls its functions is failing or not running (public.cron_job_health());
--   storage limit           a per-file limit Storage cannot honour (neotoma_ops.storage_limit_problems());
-- and, with p_thorough (reads whole tables; off for the metrics):
--   counters                usage counters, interpretation units or the outage budget off the truth;
--   rows breaking checks    rows that break a check it added that is not validated yet.
-- fix says what a person does; repair is what `migrate up` runs to put it back (NULL: re-apply `source`, the SQL
-- file that defines it, or nothing it can do without data). Read-only.
CREATE OR REPLACE FUNCTION neotoma_ops.doctor(p_thorough boolean DEFAULT true)
RETURNS TABLE (kind text, object text, problem text, fix text, repair text[], source text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_up constant text := 'neotoma-ops migrate up (it puts it back as recorded)';
  r record;
  v_n bigint;
BEGIN
  -- the record against the catalog
  FOR r IN
    SELECT o.kind AS okind, o.identity, o.source AS osource, o.definition AS want, o.state AS want_state,
           c.identity IS NOT NULL AS present, c.definition AS have, c.state AS have_state
      FROM neotoma_ops.owned_objects AS o
      LEFT JOIN neotoma_ops.catalog_objects() AS c ON c.kind = o.kind AND c.identity = o.identity
     WHERE o.definition IS NOT NULL
     ORDER BY o.kind, o.identity
  LOOP
    kind := NULL; repair := NULL; source := NULL;
    object := r.okind || ' ' || r.identity;
    IF NOT r.present THEN
      kind := 'missing';
      problem := pg_catalog.format('%s is missing (created by %s)', object, r.osource);
    ELSIF r.have IS DISTINCT FROM r.want THEN
      kind := 'altered';
      problem := pg_catalog.format('%s is defined otherwise than %s left it', object, r.osource);
    ELSIF r.okind = 'trigger' AND r.have_state ->> 'enabled' = 'D' AND r.want_state ->> 'enabled' <> 'D' THEN
      kind := 'disabled';
      problem := pg_catalog.format('%s is disabled', object);
    ELSIF r.okind = 'index' AND (r.have_state ->> 'valid')::boolean IS FALSE THEN
      kind := 'invalid';
      problem := pg_catalog.format('%s is invalid (an interrupted build): it is not used', object);
    ELSIF r.okind = 'constraint' AND (r.have_state ->> 'validated')::boolean IS FALSE
          AND (r.want_state ->> 'validated')::boolean THEN
      kind := 'not validated';
      problem := pg_catalog.format('%s is not validated: existing rows are not known to pass it', object);
    ELSIF r.okind = 'table' AND (r.have_state ->> 'row_security')::boolean IS FALSE
          AND (r.want_state ->> 'row_security')::boolean THEN
      kind := 'row security';
      problem := pg_catalog.format('%s has row level security disabled: clients read every row', object);
    ELSIF r.okind = 'cron job' AND (r.have_state ->> 'active')::boolean IS FALSE AND (r.want_state ->> 'active')::boolean THEN
      kind := 'paused';
      problem := pg_catalog.format('%s is paused', object);
    ELSIF r.okind = 'cron job' AND r.have_state IS DISTINCT FROM r.want_state THEN
      kind := 'altered';
      problem := pg_catalog.format('%s runs as %s, not as %s', object, r.have_state ->> 'username', r.want_state ->> 'username');
    END IF;
    CONTINUE WHEN kind IS NULL;
    fix := v_up;
    -- how to put it back: the file that defines it, or a statement from the record (names from the catalog)
    IF r.osource LIKE 'sql/%' AND r.okind IN ('function', 'view', 'trigger') AND kind <> 'disabled' THEN
      source := r.osource;
    ELSIF kind = 'disabled' THEN
      repair := ARRAY[pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER %s', pg_catalog.split_part(r.identity, ' ON ', 2),
                                        pg_catalog.split_part(r.identity, ' ON ', 1))];
    ELSIF r.okind = 'index' THEN
      repair := ARRAY[pg_catalog.format('DROP INDEX CONCURRENTLY IF EXISTS %s', r.identity),
                      pg_catalog.regexp_replace(r.want, '^CREATE (UNIQUE )?INDEX ', 'CREATE \1INDEX CONCURRENTLY ')];
    ELSIF r.okind = 'constraint' AND kind = 'not validated' THEN
      repair := ARRAY[pg_catalog.format('ALTER TABLE %s VALIDATE CONSTRAINT %s', pg_catalog.split_part(r.identity, ' ON ', 2),
                                        pg_catalog.split_part(r.identity, ' ON ', 1))];
    ELSIF r.okind = 'constraint' THEN
      repair := ARRAY[pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s', pg_catalog.split_part(r.identity, ' ON ', 2),
                                        pg_catalog.split_part(r.identity, ' ON ', 1)),
                      pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %s %s%s', pg_catalog.split_part(r.identity, ' ON ', 2),
                                        pg_catalog.split_part(r.identity, ' ON ', 1), r.want,
                                        CASE WHEN r.want ~ '^(CHECK|FOREIGN KEY)' AND r.want !~ 'NOT VALID$' THEN ' NOT VALID' ELSE '' END)]
                || CASE WHEN r.want ~ '^(CHECK|FOREIGN KEY)' AND r.want !~ 'NOT VALID$'
                        THEN ARRAY[pg_catalog.format('ALTER TABLE %s VALIDATE CONSTRAINT %s', pg_catalog.split_part(r.identity, ' ON ', 2),
                                                     pg_catalog.split_part(r.identity, ' ON ', 1))]
                        ELSE ARRAY[]::text[] END;
    ELSIF r.okind = 'trigger' THEN
      repair := ARRAY[pg_catalog.format('DROP TRIGGER IF EXISTS %s', r.identity), r.want];
    ELSIF r.okind = 'policy' THEN
      repair := ARRAY[pg_catalog.format('DROP POLICY IF EXISTS %s', r.identity), r.want];
    ELSIF r.okind = 'function' THEN
      repair := ARRAY[r.want];
    ELSIF r.okind = 'table' AND kind = 'row security' THEN
      repair := ARRAY[pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.identity)];
    ELSIF r.okind = 'cron job' THEN
      repair := ARRAY[pg_catalog.format('SELECT cron.schedule(%L, %L, %L)', r.identity, r.want_state ->> 'schedule', r.want_state ->> 'command')]
                || CASE WHEN (r.want_state ->> 'active')::boolean
                        THEN ARRAY[pg_catalog.format('SELECT cron.alter_job(j.jobid, active => true) FROM cron.job AS j WHERE j.jobname = %L', r.identity)]
                        ELSE ARRAY[]::text[] END;
    ELSE
      fix := 'neotoma-ops cannot put it back without its data: restore it from a backup, or revert and re-apply the migration that created it';
    END IF;
    RETURN NEXT;
  END LOOP;

  -- the privilege rules
  FOR r IN
    SELECT p.* FROM neotoma_ops.privilege_problems() AS p
     -- row level security of a recorded table is judged above, with the record
     WHERE NOT (p.problem = 'row level security is disabled'
                AND EXISTS (SELECT 1 FROM neotoma_ops.owned_objects AS o WHERE o.kind = 'table' AND o.identity = p.object
                              AND (o.state ->> 'row_security')::boolean))
  LOOP
    kind := 'grants'; object := r.object; problem := r.object || ': ' || r.problem; fix := r.fix; repair := ARRAY[r.fix];
    source := NULL;
    RETURN NEXT;
  END LOOP;

  -- the project's pg_cron jobs at work
  FOR r IN SELECT h.jobname, h.reason FROM public.cron_job_health() AS h WHERE NOT h.healthy LOOP
    kind := 'cron job failing'; object := 'cron job ' || r.jobname; problem := pg_catalog.format('%s: %s', object, r.reason);
    fix := 'see why: SELECT status, return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid) '
        || pg_catalog.format('WHERE j.jobname = %L ORDER BY start_time DESC LIMIT 5; (docs/operations.md, "pg_cron jobs do not run")', r.jobname);
    repair := NULL; source := NULL;
    RETURN NEXT;
  END LOOP;

  FOR r IN SELECT * FROM neotoma_ops.storage_limit_problems() LOOP
    kind := 'storage limit'; object := r.object; problem := r.object || ' ' || r.problem; fix := r.fix; repair := NULL;
    source := NULL;
    RETURN NEXT;
  END LOOP;

  IF NOT p_thorough THEN
    RETURN;
  END IF;

  -- counters against the truth
  FOR r IN
    WITH truth AS (
      SELECT s.user_id, sum(GREATEST(s.file_size, 0))::bigint AS bytes, count(*)::bigint AS n
        FROM public.sources AS s GROUP BY s.user_id
    )
    SELECT coalesce(su.user_id, t.user_id) AS user_id, su.total_bytes, su.total_sources, t.bytes, t.n
      FROM public.storage_usage AS su FULL JOIN truth AS t ON t.user_id = su.user_id
     WHERE su.user_id IS NULL OR su.total_bytes <> coalesce(t.bytes, 0) OR su.total_sources <> coalesce(t.n, 0)
     ORDER BY 1 LIMIT 100
  LOOP
    kind := 'counters'; object := 'storage_usage of user ' || r.user_id;
    problem := CASE WHEN r.total_bytes IS NULL
                    THEN pg_catalog.format('%s has %s sources but no counter row', object, r.n)
                    ELSE pg_catalog.format('%s counts %s bytes in %s sources; its sources hold %s bytes in %s', object,
                                           r.total_bytes, r.total_sources, coalesce(r.bytes, 0), coalesce(r.n, 0)) END;
    fix := pg_catalog.format('SELECT public.reconcile_storage_usage(%L); (it logs the correction in public.usage_drift_log)', r.user_id);
    repair := NULL; source := NULL;
    RETURN NEXT;
  END LOOP;

  FOR r IN
    SELECT su.user_id, su.interpretation_count_month AS counted,
           (SELECT count(*) FROM public.interpretation_runs AS ir
             WHERE ir.user_id = su.user_id
               AND neotoma_ops.quota_run_holds_unit(ir.user_id, ir.quota_charged_at, ir.quota_released_at, ir.created_at)) AS held
      FROM public.storage_usage AS su
     WHERE su.billing_period_end > pg_catalog.now()
  LOOP
    CONTINUE WHEN r.counted >= r.held;
    kind := 'counters'; object := 'storage_usage of user ' || r.user_id;
    problem := pg_catalog.format('%s counts %s interpretations this period; %s runs hold a unit of it', object, r.counted, r.held);
    fix := 'see docs/quotas.md, "What can make the counters drift"'; repair := NULL; source := NULL;
    RETURN NEXT;
  END LOOP;

  IF pg_catalog.to_regclass('neotoma_ops.upload_queue_payload_bytes') IS NOT NULL THEN
    -- one statement: the counters and the payloads in one snapshot
    SELECT neotoma_ops.upload_queue_payload_bytes_held()
             - (SELECT coalesce(sum(pg_catalog.octet_length(p.content)), 0) FROM public.upload_queue_payloads AS p)
      INTO v_n;
    IF v_n <> 0 THEN
      kind := 'counters'; object := 'the upload queue''s outage budget';
      problem := pg_catalog.format('%s counts %s bytes more than its payloads hold', object, v_n);
      fix := 'SELECT public.reconcile_storage_usage(); (it also corrects the outage budget)'; repair := NULL; source := NULL;
      RETURN NEXT;
    END IF;
  END IF;

  -- rows that break a check the project added and could not validate yet
  FOR r IN
    SELECT o.identity, o.definition FROM neotoma_ops.owned_objects AS o
      JOIN neotoma_ops.catalog_objects() AS c ON c.kind = o.kind AND c.identity = o.identity
     WHERE o.kind = 'constraint' AND o.definition LIKE 'CHECK %' AND (c.state ->> 'validated')::boolean IS FALSE
     ORDER BY o.identity
  LOOP
    -- the expression is the catalog's own (pg_get_constraintdef), never input
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s WHERE NOT %s', pg_catalog.split_part(r.identity, ' ON ', 2),
                              pg_catalog.regexp_replace(pg_catalog.regexp_replace(r.definition, '^CHECK ', ''), ' NOT VALID$', ''))
      INTO v_n;
    CONTINUE WHEN v_n = 0;
    kind := 'rows breaking checks'; object := 'constraint ' || r.identity;
    problem := pg_catalog.format('%s rows of %s break %s', v_n, pg_catalog.split_part(r.identity, ' ON ', 2), r.definition);
    fix := pg_catalog.format('List them with SELECT * FROM %s WHERE NOT %s; correct or delete them, then run neotoma-ops migrate up (it validates the check)',
                             pg_catalog.split_part(r.identity, ' ON ', 2),
                             pg_catalog.regexp_replace(pg_catalog.regexp_replace(r.definition, '^CHECK ', ''), ' NOT VALID$', ''));
    repair := NULL; source := NULL;
    RETURN NEXT;
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.doctor(boolean) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.doctor(boolean) TO service_role;

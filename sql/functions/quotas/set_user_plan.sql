-- requires: 0004_quotas
-- public.set_user_plan(p_user_id, p_plan_id): puts the user on plan p_plan_id (creating the counter row if
-- missing) and returns the counter row. Guarantees: the next insert is checked against the new plan
-- (upgrade effective at once); a downgrade below current usage succeeds, after which inserts are refused
-- while reads and deletes keep working. Errors: NULL argument -> 23502; unknown plan -> 23503.
CREATE OR REPLACE FUNCTION public.set_user_plan(p_user_id uuid, p_plan_id text)
RETURNS public.storage_usage
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_row public.storage_usage;
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'set_user_plan: p_user_id must not be NULL',
      HINT = 'Pass the user''s id (auth.users.id).';
  END IF;
  IF p_plan_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'set_user_plan: p_plan_id must not be NULL',
      HINT = 'Pass one of the ids in public.plans.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.plans p WHERE p.id = p_plan_id) THEN
    RAISE EXCEPTION USING ERRCODE = '23503',
      MESSAGE = format('set_user_plan: unknown plan %L for p_plan_id', p_plan_id),
      HINT = format('Known plans: %s.', (SELECT string_agg(p.id, ', ' ORDER BY p.id) FROM public.plans p));
  END IF;

  PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id]);  -- a missing row is born true
  UPDATE public.storage_usage su SET plan_id = p_plan_id WHERE su.user_id = p_user_id
  RETURNING su.* INTO v_row;
  RETURN v_row;
END
$fn$;

COMMENT ON FUNCTION public.set_user_plan(uuid, text) IS 'Moves a user to another plan; effective for the next write.';

REVOKE ALL ON FUNCTION public.set_user_plan(uuid, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.set_user_plan(uuid, text) TO service_role;

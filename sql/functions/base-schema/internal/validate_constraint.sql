-- requires: 0003_base-schema
-- neotoma_ops.validate_constraint(p_table, p_constraint) → void
-- Deferred step of the migrations that add a CHECK NOT VALID to a table that may already hold rows. Guarantees:
-- when every existing row satisfies the check, it is marked validated (ALTER TABLE … VALIDATE CONSTRAINT, which
-- scans the table without blocking writers); when some do not, nothing changes, the check keeps refusing new
-- and updated rows that break it, and the call fails with 23514 and one paragraph: how many rows, how to list
-- them and how to finish (migrate up validates again). The rows are counted with the constraint's own
-- expression, read from the catalog. A check that is already valid returns at once.
CREATE OR REPLACE FUNCTION neotoma_ops.validate_constraint(p_table text, p_constraint text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  v_table regclass;
  v_expr  text;
  v_valid boolean;
  v_rows  bigint;
BEGIN
  BEGIN
    v_table := pg_catalog.to_regclass(p_table);
  EXCEPTION WHEN invalid_name THEN
    v_table := NULL;
  END;
  SELECT pg_catalog.pg_get_expr(c.conbin, c.conrelid), c.convalidated INTO v_expr, v_valid
    FROM pg_catalog.pg_constraint c
   WHERE c.conrelid = v_table AND c.conname = p_constraint AND c.contype = 'c';
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('validate_constraint: p_table %L has no check constraint %L (p_constraint)',
                       p_table, p_constraint),
      HINT = 'Pass a schema-qualified table and the name of one of its check constraints.';
  END IF;
  IF v_valid THEN
    RETURN;
  END IF;
  BEGIN
    EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', v_table, p_constraint);
  EXCEPTION WHEN check_violation THEN
    EXECUTE format('SELECT count(*) FROM %s WHERE NOT %s', v_table, v_expr) INTO v_rows;
    RAISE EXCEPTION USING ERRCODE = 'check_violation',
      MESSAGE = format('%s existing row(s) of %s break the check %I %s, which v0.3.0 adds. New and updated rows '
                       'are already checked; these rows were left as they are, and the check stays NOT VALID '
                       'until they are fixed. List them with: SELECT * FROM %s WHERE NOT %s; correct or delete '
                       'them, then run `neotoma-ops migrate up` again to validate the check '
                       '(`neotoma-ops doctor` reports them until then).',
                       v_rows, v_table, p_constraint, v_expr, v_table, v_expr),
      TABLE = v_table::text, CONSTRAINT = p_constraint;
  END;
END
$fn$;

COMMENT ON FUNCTION neotoma_ops.validate_constraint(text, text) IS
  'Validates a NOT VALID check constraint, or reports how many existing rows break it (23514).';

REVOKE ALL ON FUNCTION neotoma_ops.validate_constraint(text, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.validate_constraint(text, text) TO service_role;

-- requires: 0004_quotas
-- neotoma_ops.effective_limit(p_override, p_plan_limit): the one rule for a user's limit: their own override when
-- set, else their plan's; NULL means unlimited. Every quota check, the usage report and the metrics take limits
-- through it. An inlinable SQL function (no SET clause, no SECURITY DEFINER): a query that calls it is planned as
-- if coalesce(p_override, p_plan_limit) were written out, so the insert path costs nothing more.
CREATE OR REPLACE FUNCTION neotoma_ops.effective_limit(p_override anyelement, p_plan_limit anyelement)
RETURNS anyelement
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
AS $$
  SELECT coalesce(p_override, p_plan_limit)
$$;

REVOKE ALL ON FUNCTION neotoma_ops.effective_limit(anyelement, anyelement) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.effective_limit(anyelement, anyelement) TO service_role;

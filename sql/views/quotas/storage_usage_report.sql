-- requires: 0004_quotas
-- public.storage_usage_report: one row per user with a counter row, readable by the user themself only
-- (security_invoker: the caller's RLS on storage_usage applies; service_role sees everyone).
-- Figures are effective now: when the stored billing period has ended but not yet rolled, the report
-- already shows the new period (interpretations_used = 0, resets_at = its end).
-- state (storage): over (used > limit, e.g. after a downgrade), full (used = limit), warning (>= 80 %), ok.
-- percent_used may exceed 100; NULL when the limit is unlimited or zero.
CREATE OR REPLACE VIEW public.storage_usage_report WITH (security_invoker = true) AS
SELECT su.user_id,
       su.plan_id,
       su.total_bytes                                   AS used_bytes,
       lim.storage_limit_bytes                          AS limit_bytes,
       public.format_bytes(su.total_bytes)              AS used_human,
       coalesce(public.format_bytes(lim.storage_limit_bytes), 'unlimited') AS limit_human,
       CASE WHEN lim.storage_limit_bytes > 0
            THEN round(su.total_bytes::numeric * 100 / lim.storage_limit_bytes, 1) END AS percent_used,
       CASE WHEN lim.storage_limit_bytes IS NULL THEN 'ok'
            WHEN su.total_bytes > lim.storage_limit_bytes THEN 'over'
            WHEN su.total_bytes = lim.storage_limit_bytes THEN 'full'
            WHEN su.total_bytes::numeric * 100 >= lim.storage_limit_bytes::numeric * 80 THEN 'warning'
            ELSE 'ok' END                               AS state,
       su.total_sources,
       CASE WHEN per.rolled THEN 0 ELSE su.interpretation_count_month END AS interpretations_used,
       lim.interpretation_limit_month                   AS interpretations_limit,
       lim.max_file_bytes,
       coalesce(public.format_bytes(lim.max_file_bytes), 'unlimited') AS max_file_human,
       per.period_start                                 AS billing_period_start,
       per.period_end                                   AS billing_period_end,
       to_char(per.period_start AT TIME ZONE 'UTC', 'YYYY-MM') AS billing_month,
       per.period_end                                   AS resets_at,
       su.last_calculated
  FROM public.storage_usage su
  JOIN public.plans p ON p.id = su.plan_id
 CROSS JOIN LATERAL (
       SELECT neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes) AS storage_limit_bytes,
              neotoma_ops.effective_limit(su.interpretation_limit_month_override, p.interpretation_limit_month) AS interpretation_limit_month,
              neotoma_ops.effective_limit(su.max_file_bytes_override, p.max_file_bytes) AS max_file_bytes) lim
 CROSS JOIN LATERAL (
       SELECT false AS rolled, su.billing_period_start AS period_start, su.billing_period_end AS period_end
        WHERE su.billing_period_end > now()
       UNION ALL
       SELECT true, b.period_start, b.period_end
         FROM public.billing_period_bounds(su.billing_anchor_day, now()) b
        WHERE su.billing_period_end <= now()) per;

COMMENT ON VIEW public.storage_usage_report IS
  'Per-user usage, limits, human sizes, percent (may exceed 100), state ok|warning|full|over, resets_at. RLS: own row only.';

REVOKE ALL ON TABLE public.storage_usage_report FROM PUBLIC, anon, authenticated, service_role;

GRANT SELECT ON TABLE public.storage_usage_report TO authenticated, service_role;

-- Up Migration
-- neotoma_ops.quota_refund_interpretations(uuid[], timestamptz[]) (set-based interpretation refund) is created
-- by sql/functions/quota_refund_interpretation_quota.sql, which is applied after the migrations. This migration
-- has nothing to create; it exists so that `migrate down` removes that function with the rest of the quota
-- objects (the function files are re-applied by the next `migrate up`).
SELECT 1;

-- Down Migration
DROP FUNCTION IF EXISTS neotoma_ops.quota_refund_interpretations(uuid[], timestamptz[]);

-- requires: 0004_quotas
-- public.format_bytes(p_bytes): a byte count in binary units with three significant digits:
-- 512 -> '512 B', 1536 -> '1.50 KiB', 12582912 -> '12.0 MiB', 1073741824 -> '1.00 GiB', 104857600 -> '100 MiB'.
-- Guarantees: pure; exact for any bigint (numeric arithmetic, no overflow); NULL -> NULL; negative values
-- keep their sign. Used by the quota error messages and storage_usage_report.
CREATE OR REPLACE FUNCTION public.format_bytes(p_bytes bigint)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  v_units constant text[] := ARRAY['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  v_value numeric := abs(p_bytes::numeric);
  v_unit  integer := 1;
  v_sign  text := CASE WHEN p_bytes < 0 THEN '-' ELSE '' END;
BEGIN
  IF v_value < 1024 THEN
    RETURN v_sign || v_value::text || ' B';
  END IF;
  WHILE v_value >= 1024 AND v_unit < 7 LOOP
    v_value := v_value / 1024;
    v_unit := v_unit + 1;
  END LOOP;
  -- 1023.9999 MiB rounds to 1024: show it as 1.00 GiB instead
  IF round(v_value, 0) >= 1024 AND v_unit < 7 THEN
    v_value := v_value / 1024;
    v_unit := v_unit + 1;
  END IF;
  RETURN v_sign
    || CASE WHEN round(v_value, 2) < 10 THEN round(v_value, 2)::text
            WHEN round(v_value, 1) < 100 THEN round(v_value, 1)::text
            ELSE round(v_value, 0)::text END
    || ' ' || v_units[v_unit];
END
$fn$;

COMMENT ON FUNCTION public.format_bytes(bigint) IS 'Byte count in binary units (B, KiB, MiB, GiB, ...), three significant digits.';

REVOKE ALL ON FUNCTION public.format_bytes(bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.format_bytes(bigint) TO service_role;

-- pure and data-free; storage_usage_report (security_invoker) calls it on behalf of signed-in users
GRANT EXECUTE ON FUNCTION public.format_bytes(bigint) TO authenticated;

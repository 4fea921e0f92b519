-- neotoma_ops.snapshot_catalog(): keeps the catalog as it is now (neotoma_ops.catalog_objects()) in
-- neotoma_ops.catalog_before, for neotoma_ops.record_owned_objects() to compare with once the next step ran.
CREATE OR REPLACE FUNCTION neotoma_ops.snapshot_catalog()
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $fn$
  DELETE FROM neotoma_ops.catalog_before;
  INSERT INTO neotoma_ops.catalog_before SELECT * FROM neotoma_ops.catalog_objects();
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.snapshot_catalog() FROM PUBLIC;

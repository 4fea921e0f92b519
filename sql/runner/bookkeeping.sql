-- The migration runner's own tables (schema neotoma_ops), created before the first migration and dropped after
-- the last one is reverted. Idempotent: run at the start of every `migrate`.
--  * pgmigrations: the migrations applied, in order;
--  * applied_sql_files: each SQL file applied, its checksum and the migration it requires (reverting that
--    migration drops what the file created);
--  * deferred_steps: work a migration declares that must not run inside its transaction (index builds,
--    validations, batched backfills), with how far each has come;
--  * owned_objects: the record of what the project owns: every object a migration or SQL file created, and every
--    object that existed before and was changed (or dropped) by one, with what it was (neotoma_ops.doctor()
--    judges the database by it; `migrate up` puts back what drifted from it; `migrate down` drops exactly it).
CREATE SCHEMA IF NOT EXISTS neotoma_ops;

CREATE TABLE IF NOT EXISTS neotoma_ops.pgmigrations (
  id     serial       PRIMARY KEY,
  name   varchar(255) NOT NULL,
  run_on timestamp    NOT NULL
);

CREATE TABLE IF NOT EXISTS neotoma_ops.applied_sql_files (
  file       text PRIMARY KEY,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  migration  text
);
COMMENT ON COLUMN neotoma_ops.applied_sql_files.migration IS
  'The migration the file requires (its -- requires: header): reverting it drops what the file created.';

CREATE TABLE IF NOT EXISTS neotoma_ops.deferred_steps (
  migration     text        NOT NULL,
  position      integer     NOT NULL,
  description   text        NOT NULL,
  statement     text        NOT NULL,
  repeat        boolean     NOT NULL DEFAULT false,
  index_name    text,
  cursor        text,
  attempts      integer     NOT NULL DEFAULT 0,
  last_error    text,
  last_sqlstate text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz,
  PRIMARY KEY (migration, position)
);
-- how far a running step has come, written every few seconds by the run that executes it
ALTER TABLE neotoma_ops.deferred_steps ADD COLUMN IF NOT EXISTS progress text;
ALTER TABLE neotoma_ops.deferred_steps ADD COLUMN IF NOT EXISTS progress_at timestamptz;
ALTER TABLE neotoma_ops.deferred_steps ADD COLUMN IF NOT EXISTS total_statement text;

CREATE TABLE IF NOT EXISTS neotoma_ops.owned_objects (
  kind                text        NOT NULL,
  identity            text        NOT NULL,
  source              text        NOT NULL,
  definition          text,
  state               jsonb       NOT NULL DEFAULT '{}',
  preexisting         boolean     NOT NULL DEFAULT false,
  previous_definition text,
  previous_state      jsonb,
  changed_by          text,
  recorded_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, identity)
);
COMMENT ON TABLE neotoma_ops.owned_objects IS
  'What the project owns (kind, identity as neotoma_ops.catalog_objects() names it): created by source (a migration or SQL file), '
  'or, preexisting, changed by it from previous_*; definition NULL: dropped by it and to stay absent. changed_by: the last '
  'migration that changed an object created earlier.';
CREATE INDEX IF NOT EXISTS owned_objects_source_idx ON neotoma_ops.owned_objects (source);

ALTER TABLE neotoma_ops.pgmigrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.applied_sql_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.deferred_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.owned_objects ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE neotoma_ops.pgmigrations, neotoma_ops.applied_sql_files, neotoma_ops.deferred_steps,
                    neotoma_ops.owned_objects FROM PUBLIC;

-- the catalog just before the step being run (neotoma_ops.snapshot_catalog()) and just after it
-- (neotoma_ops.record_owned_objects()), one run at a time (the migrate lease)
CREATE UNLOGGED TABLE IF NOT EXISTS neotoma_ops.catalog_before (
  kind text, identity text, definition text, state jsonb, written boolean
);
CREATE UNLOGGED TABLE IF NOT EXISTS neotoma_ops.catalog_after (LIKE neotoma_ops.catalog_before);
ALTER TABLE neotoma_ops.catalog_before ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.catalog_after ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE neotoma_ops.catalog_before, neotoma_ops.catalog_after FROM PUBLIC;

-- Up Migration
-- Every table of the project's schemas has row level security enabled, including the migration history
-- table the migration runner creates itself (neotoma_ops.pgmigrations). No policy: only its owner (the role
-- that runs the migrations) reads or writes it; clients have no privilege on it in any case.
ALTER TABLE neotoma_ops.pgmigrations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE neotoma_ops.pgmigrations FROM PUBLIC, anon, authenticated;

-- Down Migration
ALTER TABLE neotoma_ops.pgmigrations DISABLE ROW LEVEL SECURITY;

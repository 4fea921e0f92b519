-- neotoma_ops.validate_constraint: the deferred step that validates a CHECK added NOT VALID to a table that may
-- already hold rows breaking it. Valid rows: validated. Breaking rows: nothing changes, 23514 with one paragraph
-- counting them with the constraint's own expression; the check keeps refusing new bad rows.
BEGIN;
SELECT plan(8);

CREATE TABLE public.t_validate (id int PRIMARY KEY, size bigint NOT NULL);
INSERT INTO public.t_validate VALUES (1, 10), (2, -1), (3, -2), (4, 5);
ALTER TABLE public.t_validate ADD CONSTRAINT t_validate_size_not_negative CHECK (size >= 0) NOT VALID;

SELECT throws_like($$SELECT neotoma_ops.validate_constraint('public.t_validate', 't_validate_size_not_negative')$$,
  '2 existing row(s) of public.t_validate break the check t_validate_size_not_negative (size >= 0)%',
  'breaking rows: the paragraph counts them with the constraint''s own expression');
SELECT throws_ok($$SELECT neotoma_ops.validate_constraint('public.t_validate', 't_validate_size_not_negative')$$, '23514',
  NULL, '... with SQLSTATE 23514');
SELECT is((SELECT convalidated FROM pg_constraint WHERE conname = 't_validate_size_not_negative'), false,
  'the check stays NOT VALID');
SELECT throws_ok($$INSERT INTO public.t_validate VALUES (5, -3)$$, '23514', NULL, 'and still refuses a new bad row');

DELETE FROM public.t_validate WHERE size < 0;
SELECT lives_ok($$SELECT neotoma_ops.validate_constraint('public.t_validate', 't_validate_size_not_negative')$$,
  'once the rows are fixed it validates');
SELECT is((SELECT convalidated FROM pg_constraint WHERE conname = 't_validate_size_not_negative'), true, 'the check is valid');
SELECT lives_ok($$SELECT neotoma_ops.validate_constraint('public.t_validate', 't_validate_size_not_negative')$$,
  'a valid check returns at once');
SELECT throws_ok($$SELECT neotoma_ops.validate_constraint('public.t_validate', 'no_such_check')$$, '22023',
  'validate_constraint: p_table ''public.t_validate'' has no check constraint ''no_such_check'' (p_constraint)',
  'an unknown constraint is refused, naming both parameters');

SELECT * FROM finish();
ROLLBACK;

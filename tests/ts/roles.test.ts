// The role rules the suite runs under. From PostgreSQL 16 on, CREATEROLE gives no power over a role one did not
// create (granting it needs its ADMIN OPTION) and a membership carries INHERIT and SET options; 15 has neither rule.
//  * Supabase mode: `postgres` is set up as Supabase sets it up on this major (scripts/supabase/roles.sql,
//    roles-16.sql), and can do with the API roles what an operator of a Supabase project does.
//  * 16+, on a plain cluster of its own (in either mode): a non-superuser with CREATEROLE and BYPASSRLS (what 16+
//    asks of a role that creates a BYPASSRLS role; 15 asks a superuser) migrates a database without the API
//    roles: the shim creates them, the creator holds them WITH ADMIN OPTION, and a full migrate down drops them.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDown, migrateUp } from '../../src/migrate.js';
import { client, serverMajor, testMode, throwawayCluster, type Throwaway } from './helpers/db.js';

const major = await serverMajor();
const API_ROLES = ['anon', 'authenticated', 'service_role'];

interface Membership {
  role: string;
  admin: boolean;
}

/** The roles `member` belongs to (among `roles`), with the ADMIN OPTION of each. */
async function memberships(c: pg.ClientBase, member: string, roles: string[]): Promise<Membership[]> {
  const { rows } = await c.query<Membership>(
    `SELECT g.rolname AS role, bool_or(m.admin_option) AS admin
       FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
      WHERE r.rolname = $1 AND g.rolname = ANY ($2::text[])
      GROUP BY g.rolname ORDER BY g.rolname`,
    [member, roles],
  );
  return rows;
}

/** The SQLSTATE `sql` fails with, or 'ok'; inside a savepoint so the transaction goes on. */
async function outcome(c: pg.ClientBase, sql: string): Promise<string> {
  await c.query('SAVEPOINT probe');
  try {
    await c.query(sql);
    await c.query('RELEASE SAVEPOINT probe');
    return 'ok';
  } catch (err) {
    await c.query('ROLLBACK TO SAVEPOINT probe');
    return (err as { code?: string }).code ?? String(err);
  }
}

describe.runIf(testMode === 'supabase')(`postgres on a Supabase-shaped PostgreSQL ${major}`, () => {
  let c: pg.Client;
  beforeAll(async () => {
    c = await client();
  });
  afterAll(async () => {
    await c?.end();
  });

  it('is the non-superuser Supabase makes it, holding the API roles as Supabase grants them on this major', async () => {
    const { rows } = await c.query(
      `SELECT current_user AS role, rolsuper AS superuser, rolcreaterole AS createrole, rolbypassrls AS bypassrls
         FROM pg_roles WHERE rolname = current_user`,
    );
    expect(rows[0]).toEqual({ role: 'postgres', superuser: false, createrole: true, bypassrls: true });
    // 16+: WITH ADMIN OPTION, the authenticator too (supabase/postgres "grant with admin to postgres 16 and
    // above"); 15: plain memberships, CREATEROLE being enough to grant them there
    expect(await memberships(c, 'postgres', [...API_ROLES, 'authenticator'])).toEqual(
      major >= 16
        ? ['anon', 'authenticated', 'authenticator', 'service_role'].map((role) => ({ role, admin: true }))
        : API_ROLES.map((role) => ({ role, admin: false })),
    );
  });

  it('can act as each API role, make a role of its own a member of one and drop that role again', async () => {
    await c.query('BEGIN');
    try {
      for (const role of API_ROLES) {
        expect(await outcome(c, `SET LOCAL ROLE ${role}`), `SET ROLE ${role}`).toBe('ok');
        await c.query('RESET ROLE');
      }
      expect(await outcome(c, 'CREATE ROLE neotoma_roles_probe NOLOGIN')).toBe('ok');
      // needs ADMIN OPTION on authenticated from 16 on
      expect(await outcome(c, 'GRANT authenticated TO neotoma_roles_probe')).toBe('ok');
      expect(await memberships(c, 'neotoma_roles_probe', API_ROLES)).toEqual([{ role: 'authenticated', admin: false }]);
      expect(await outcome(c, 'REVOKE authenticated FROM neotoma_roles_probe')).toBe('ok');
      expect(await outcome(c, 'DROP ROLE neotoma_roles_probe')).toBe('ok');
    } finally {
      await c.query('ROLLBACK');
    }
  });

  it.runIf(major >= 16)('holds no power over a role it has no ADMIN OPTION of, CREATEROLE notwithstanding (16+)', async () => {
    await c.query('BEGIN');
    try {
      expect(await outcome(c, 'CREATE ROLE neotoma_roles_probe NOLOGIN')).toBe('ok');
      // postgres holds no ADMIN OPTION of pg_monitor here: 15 lets CREATEROLE grant it, 16+ does not
      expect(await outcome(c, 'GRANT pg_monitor TO neotoma_roles_probe')).toBe('42501');
    } finally {
      await c.query('ROLLBACK');
    }
  });
});

describe.runIf(major >= 16)(`a non-superuser migrating role on plain PostgreSQL ${major}`, () => {
  let db: Throwaway;
  let admin: pg.Client;
  let ownerUrl: string;
  const roles = async (): Promise<string[]> =>
    (await admin.query<{ rolname: string }>(`SELECT rolname FROM pg_roles ORDER BY rolname`)).rows.map((r) => r.rolname);

  beforeAll(async () => {
    db = await throwawayCluster({ supabase: false });
    admin = await client(db.adminUrl);
    // owner of the database (so of schema public), CREATEROLE and BYPASSRLS, no superuser; pg_cron created by
    // the superuser, its schema usable by the owner as an admin grants it
    await admin.query(`CREATE ROLE neotoma_owner LOGIN CREATEROLE BYPASSRLS PASSWORD 'owner-password'`);
    await admin.query(`ALTER DATABASE neotoma OWNER TO neotoma_owner`);
    await admin.query(`CREATE EXTENSION IF NOT EXISTS pg_cron`);
    await admin.query(`GRANT USAGE ON SCHEMA cron TO neotoma_owner`);
    await admin.query(`GRANT SELECT ON cron.job TO neotoma_owner`);
    await admin.query(`GRANT SELECT, DELETE ON cron.job_run_details TO neotoma_owner`);
    const u = new URL(db.adminUrl);
    u.username = 'neotoma_owner';
    u.password = 'owner-password';
    ownerUrl = u.toString();
  }, 120_000);

  afterAll(async () => {
    await admin?.end();
    await db?.destroy();
  });

  it('creates the API roles it lacks (holding them WITH ADMIN OPTION as their creator), and a full down drops them', async () => {
    const before = await roles();
    expect(before.filter((r) => API_ROLES.includes(r))).toEqual([]);
    const up = await migrateUp(ownerUrl);
    expect(up.migrations.length).toBeGreaterThan(0);
    expect((await roles()).filter((r) => API_ROLES.includes(r))).toEqual(API_ROLES);
    expect(await memberships(admin, 'neotoma_owner', API_ROLES)).toEqual(API_ROLES.map((role) => ({ role, admin: true })));
    const { rows } = await admin.query(`SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role'`);
    expect(rows[0]).toEqual({ rolbypassrls: true });
    await migrateDown(ownerUrl, { count: up.migrations.length });
    expect(await roles()).toEqual(before);
  });
});

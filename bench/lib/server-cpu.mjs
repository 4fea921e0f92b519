// CPU time used by a LOCAL PostgreSQL server, read from /proc (Linux), for "DB CPU per job" in the benchmarks.
//   const cpu = await serverCpu(client);   // client: a connected pg.Client of a superuser (or pg_read_all_settings)
//   const a = await cpu();  ...timed part...  const b = await cpu();   // ms; both null when not measurable
// The server's CPU so far = the postmaster's own utime + stime, plus cutime + cstime (children that have exited and
// been reaped by it: backends of closed connections, finished autovacuum workers), plus utime + stime of every live
// process whose parent is the postmaster (backends, autovacuum, checkpointer, walwriter, background workers).
// Resolution: one clock tick (getconf CLK_TCK, usually 100/s, so 10 ms) per process per reading.
// Not measurable (the reader returns null): not Linux, a remote server (its data directory or postmaster.pid is not
// readable here, or the pid in it is not a live postgres process on this machine), or a role that may not read
// data_directory.
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

let tickMs;
function clockTickMs() {
  if (tickMs === undefined) {
    let hz = 100;
    try {
      hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      // getconf missing: Linux's USER_HZ is 100 nearly everywhere
    }
    tickMs = 1000 / hz;
  }
  return tickMs;
}

/**
 * /proc/PID/stat as { comm, state, ppid, utime, stime, cutime, cstime } (times in clock ticks), or null when the process is
 * gone. comm (field 2) is in parentheses and may itself hold spaces and ')', so the fields are split after the last ')'.
 */
export async function procStat(pid) {
  let text;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const comm = text.slice(text.indexOf('(') + 1, close);
  // After ") ": field 3 state, 4 ppid, ... 14 utime, 15 stime, 16 cutime, 17 cstime (1-based, man 5 proc).
  const f = text.slice(close + 2).trim().split(' ');
  const at = (field) => Number(f[field - 3]);
  return { comm, state: f[0], ppid: at(4), utime: at(14), stime: at(15), cutime: at(16), cstime: at(17) };
}

/** Total CPU ms so far of the server whose postmaster is `pid` (see the header), or null when it is gone. */
export async function serverCpuMs(pid) {
  const pm = await procStat(pid);
  if (pm === null) return null;
  let ticks = pm.utime + pm.stime + pm.cutime + pm.cstime;
  const entries = await readdir('/proc');
  await Promise.all(entries.map(async (e) => {
    if (!/^\d+$/.test(e)) return;
    const s = await procStat(e);
    if (s !== null && s.ppid === pid) ticks += s.utime + s.stime;
  }));
  return ticks * clockTickMs();
}

/** The postmaster pid of the server `client` is connected to, when that server runs on this machine; else null. */
export async function postmasterPid(client) {
  if (process.platform !== 'linux') return null;
  try {
    const { rows } = await client.query(`SELECT current_setting('data_directory') AS dir`);
    const dir = rows[0].dir;
    const lines = (await readFile(path.join(dir, 'postmaster.pid'), 'utf8')).split('\n');
    const pid = Number(lines[0]);
    // Line 2 of postmaster.pid is the data directory: a same-named directory on another machine would not match a
    // live postmaster here whose children include this connection's backend.
    if (!Number.isInteger(pid) || pid <= 0 || path.resolve(lines[1]) !== path.resolve(dir)) return null;
    const { rows: b } = await client.query('SELECT pg_backend_pid() AS pid');
    const backend = await procStat(b[0].pid);
    if (backend === null || backend.ppid !== pid) return null;
    return pid;
  } catch {
    return null;
  }
}

/**
 * Waits (at most `timeoutMs`) until no other client session of the server is connected and none of the
 * postmaster's children is a zombie: a backend whose client has gone keeps running its exit for a moment, and its
 * CPU shows in neither the live children nor the postmaster's cutime until the postmaster has reaped it (a reading
 * right after a pgbench run missed 90 % of its backend's CPU).
 */
async function settle(client, pid, timeoutMs = 5000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`);
    let zombies = 0;
    for (const e of await readdir('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const s = await procStat(e);
      if (s !== null && s.ppid === pid && s.state === 'Z') zombies += 1;
    }
    if ((rows[0].n === 0 && zombies === 0) || Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A reader `async () => ms | null` of the server's CPU so far (always null when not measurable). Each reading first
 * waits for the sessions of the part just measured to end (see settle()), so that their CPU is counted in it.
 */
export async function serverCpu(client) {
  const pid = await postmasterPid(client);
  return async () => {
    if (pid === null) return null;
    await settle(client, pid);
    return serverCpuMs(pid);
  };
}

/** "N µs" of DB CPU per job between two readings, or "n/a". */
export function perJobText(before, after, jobs) {
  return before === null || after === null ? 'n/a' : `${(((after - before) * 1000) / jobs).toFixed(0)} µs`;
}

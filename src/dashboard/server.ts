// `keel dashboard`: a local web page over run folders, served by node:http.
//
// Safety, as Jupyter does it: binds 127.0.0.1 unless a host is given
// explicitly; every request needs the random token (in ?token=, or the
// HttpOnly cookie the page sets); a loopback server refuses a Host header that
// is not loopback (DNS rebinding). Files are served only from inside the run
// folders: the decoded path may not hold '..', a NUL or a backslash, and its
// real path (symlinks resolved) must stay inside the folder's real path.
//
// Live: the server polls each run's metrics tail (and looks for new sub-runs)
// every `pollMs` and pushes `update` / `runs` as server-sent events; the page
// then fetches that run's decimated view.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve, sep } from 'node:path';
import { spawn } from 'node:child_process';
import { isRunDir, Run } from './runs.js';
import { pageHtml } from './page.js';

export interface DashboardOptions {
  /** Port (default 0: a random free port). */
  port?: number;
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /**
   * Whether `host` was asked for explicitly (`--host`). A non-loopback
   * address is refused unless it was: the dashboard is private by default.
   * runDashboard sets it when `host` is given.
   */
  hostExplicit?: boolean;
  /** Open the page in a browser (xdg-open), default false here (runDashboard: true unless --no-open). */
  open?: boolean;
  /** How often run folders are polled, ms (default 300). */
  pollMs?: number;
  /** Points per series in a run's view: buckets × ≤4 (default 2000 buckets). */
  buckets?: number;
  /** A fixed token (tests); default 24 random bytes, hex. */
  token?: string;
}

export interface Dashboard {
  url: string;
  port: number;
  host: string;
  token: string;
  server: Server;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Starts the dashboard server over `dirs`; resolves once it listens. */
export async function startDashboard(dirs: string[], options: DashboardOptions = {}): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host) && options.hostExplicit !== true) {
    throw new Error(`keel dashboard: refusing to bind ${host} (not a loopback address) without --host; the runs would be readable from other machines`);
  }
  if (dirs.length === 0) throw new Error('keel dashboard: give at least one run folder');
  const roots = dirs.map((d) => {
    const abs = resolve(d);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new Error(`keel dashboard: ${d} is not a folder`);
    return abs;
  });
  const token = options.token ?? randomBytes(24).toString('hex');
  const pollMs = options.pollMs ?? 300;
  const buckets = options.buckets ?? 2000;

  const runs: Run[] = [];
  const known = new Set<string>();
  const discover = (): boolean => {
    let added = false;
    const add = (dir: string, name: string) => {
      if (known.has(dir)) return;
      known.add(dir);
      runs.push(new Run(`r${runs.length}`, dir, name));
      added = true;
    };
    for (const root of roots) {
      // the folder itself is a run when it holds one (or nothing yet: a run about to start)
      const subs: string[] = [];
      try {
        for (const e of readdirSync(root, { withFileTypes: true })) {
          if (e.isDirectory() && e.name !== 'checkpoints' && e.name !== 'tb' && isRunDir(join(root, e.name))) subs.push(e.name);
        }
      } catch { /* vanished */ }
      if (isRunDir(root) || subs.length === 0) add(root, basename(root));
      for (const s of subs.sort()) add(join(root, s), `${basename(root)}/${s}`);
    }
    return added;
  };
  discover();

  const clients = new Set<ServerResponse>();
  const send = (event: string, data: unknown) => {
    const msg = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) c.write(msg);
  };
  const runList = () => runs.map((r) => ({ id: r.id, name: r.name, dir: r.dir }));
  for (const r of runs) r.poll();
  const timer = setInterval(() => {
    if (discover()) send('runs', runList());
    for (const r of runs) if (r.poll()) send('update', { id: r.id });
  }, pollMs);
  timer.unref();
  const heartbeat = setInterval(() => { for (const c of clients) c.write(': keep-alive\n\n'); }, 15000);
  heartbeat.unref();

  const tokenBuf = Buffer.from(token);
  const tokenOk = (given: string | undefined): boolean => {
    if (given === undefined) return false;
    const b = Buffer.from(given);
    return b.length === tokenBuf.length && timingSafeEqual(b, tokenBuf);
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      if (!res.headersSent) reply(res, 500, `internal error: ${(e as Error).message}`);
      else res.end();
    }
  });

  function handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (isLoopback(host) && !isLoopback(hostHeader)) return reply(res, 403, 'forbidden: Host is not a loopback address');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed');
    const raw = req.url ?? '/';
    const url = new URL(raw, 'http://127.0.0.1');
    const cookieToken = /(?:^|;\s*)keel-dashboard-token=([0-9a-zA-Z]+)/.exec(req.headers.cookie ?? '')?.[1];
    const auth = /^token\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const viaQuery = url.searchParams.get('token') ?? undefined;
    if (!tokenOk(viaQuery) && !tokenOk(cookieToken) && !tokenOk(auth)) return reply(res, 403, 'forbidden: this dashboard needs its token (the URL printed by keel dashboard)');
    // the raw path, before URL normalisation removes dot segments
    const rawPath = raw.split('?')[0];
    if (rawPath === '/' || rawPath === '/index.html') {
      res.setHeader('Set-Cookie', `keel-dashboard-token=${token}; HttpOnly; SameSite=Strict; Path=/`);
      res.setHeader('Content-Security-Policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'");
      return reply(res, 200, pageHtml(), 'text/html; charset=utf-8');
    }
    if (rawPath === '/api/runs') return json(res, runList());
    let m = /^\/api\/run\/(r\d+)$/.exec(rawPath);
    if (m) {
      const run = runs.find((r) => r.id === m![1]);
      if (!run) return reply(res, 404, 'no such run');
      run.poll();
      return json(res, run.view(buckets));
    }
    if (rawPath === '/api/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
      res.write(`event: runs\ndata: ${JSON.stringify(runList())}\n\n`);
      clients.add(res);
      req.on('close', () => clients.delete(res));
      return;
    }
    m = /^\/files\/(r\d+)\/(.+)$/.exec(rawPath);
    if (m) return serveFile(res, runs.find((r) => r.id === m![1]), m[2]);
    return reply(res, 404, 'not found');
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const shownHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}/?token=${token}`;
  if (options.open) openBrowser(url);
  return {
    url, port, host, token, server,
    close: () => new Promise<void>((ok) => {
      clearInterval(timer);
      clearInterval(heartbeat);
      for (const c of clients) c.end();
      clients.clear();
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type });
  res.end(body);
}

function json(res: ServerResponse, value: unknown): void {
  reply(res, 200, JSON.stringify(value), 'application/json');
}

const TYPES: Record<string, string> = {
  '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json', '.jsonl': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8', '.csv': 'text/plain; charset=utf-8', '.html': 'text/plain; charset=utf-8',
};

/**
 * Serves `encoded` (the URL path after /files/<run>/) from inside the run's
 * folder, or 404/403. Decoded once; anything that could climb out (.., an
 * absolute path, a backslash, NUL) is refused before the file system is asked,
 * and the real path, symlinks resolved, must stay inside the folder.
 */
export function safeRunPath(root: string, encoded: string): { path: string } | { status: 403 | 404 } {
  let rel: string;
  try {
    rel = decodeURIComponent(encoded);
  } catch {
    return { status: 404 };
  }
  if (rel.includes('\0') || rel.includes('\\') || rel.includes('%') || isAbsolute(rel)) return { status: 403 };
  const parts = rel.split('/');
  if (parts.some((p) => p === '..' || p === '.' || p === '')) return { status: 403 };
  let realRoot: string, real: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(join(root, ...parts));
  } catch {
    return { status: 404 };
  }
  if (real !== realRoot && !real.startsWith(realRoot + sep)) return { status: 403 };
  try {
    if (!statSync(real).isFile()) return { status: 404 };
  } catch {
    return { status: 404 };
  }
  return { path: real };
}

function serveFile(res: ServerResponse, run: Run | undefined, encoded: string): void {
  if (!run) return reply(res, 404, 'no such run');
  const r = safeRunPath(run.dir, encoded);
  if ('status' in r) return reply(res, r.status, r.status === 403 ? 'forbidden: outside the run folder' : 'not found');
  const ext = /\.[a-z0-9]+$/i.exec(r.path)?.[0].toLowerCase() ?? '';
  const type = TYPES[ext] ?? 'application/octet-stream';
  // an SVG from a run folder is data: no scripts in it
  if (ext === '.svg') res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  reply(res, 200, readFileSync(r.path) as unknown as string, type);
}

function openBrowser(url: string): void {
  for (const cmd of ['/usr/bin/xdg-open', '/usr/bin/open']) {
    if (!existsSync(cmd)) continue;
    try {
      const p = spawn(cmd, [url], { stdio: 'ignore', detached: true });
      p.on('error', () => {});
      p.unref();
    } catch { /* no browser: the printed URL is enough */ }
    return;
  }
}

/**
 * `keel dashboard DIR... [--port N] [--host H] [--no-open]`: starts the
 * server, prints exactly one line `keel dashboard: URL`, and serves until
 * SIGINT/SIGTERM. Resolves with the running dashboard.
 */
export async function runDashboard(dirs: string[], options: { port?: number; host?: string; open?: boolean } = {}): Promise<Dashboard> {
  const d = await startDashboard(dirs, { port: options.port, host: options.host, hostExplicit: options.host !== undefined, open: options.open ?? true });
  console.log(`keel dashboard: ${d.url}`);
  return d;
}


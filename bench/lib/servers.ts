/** Starting the three things under test: nginx (static cache), the eris origin, the Worker under wrangler dev. */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathWithOurNode, run, startProcess, waitFor, type Started } from './procs.ts';

export const PROJECT_DIR = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
export const WRANGLER = join(PROJECT_DIR, 'node_modules/.bin/wrangler');
const CLI = join(PROJECT_DIR, 'origin/cli/index.ts');
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];

/** GET with a deadline; resolves to the status and body, or undefined when the server is not up. */
export async function httpGet(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<{ status: number; body: string; headers: Headers } | undefined> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text(), headers: res.headers };
  } catch {
    return undefined;
  }
}

/** Status and headers only; the body is cancelled (for NARs). */
export async function httpHead(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<{ status: number; headers: Headers }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  return { status: res.status, headers: res.headers };
}

export async function waitOk(what: string, url: string, headers: Record<string, string>, timeoutMs: number, watch: Started[]): Promise<void> {
  await waitFor(what, async () => ((await httpGet(url, headers, 3000))?.status === 200 ? true : undefined), timeoutMs, watch);
}

/**
 * A reverse proxy in front of a server, adding headers: how `nix copy` (which cannot send the edge secret)
 * reaches the origin directly. The static cache goes through one too, so both pay the same hop.
 */
export interface NginxProxy { port: number; upstream: string; headers: Record<string, string> }

/** `accessLog`: a file for one line per request on the proxies (time, port, request, status, request/upstream times, connection). */
export function startNginx(workDir: string, staticDir: string, port: number, proxies: NginxProxy[] = [], opts: { accessLog?: string } = {}): Started {
  const dir = join(workDir, 'nginx');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, `# written by bench/run.ts: a static file:// binary cache, as a CDN or plain web server would serve it
daemon off;
master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
${opts.accessLog ? `  log_format timing '$msec $server_port "$request" $status $body_bytes_sent $request_time $upstream_connect_time $upstream_header_time $upstream_response_time $connection $connection_requests';\n` : ''}  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar nar; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${staticDir};
  }
${proxies.map((p, i) => `  upstream u${i} { server ${new URL(p.upstream).host}; keepalive 64; }
  server {
    listen 127.0.0.1:${p.port};
${opts.accessLog ? `    access_log ${opts.accessLog} timing;\n` : ''}    location / {
      proxy_pass http://u${i};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      client_max_body_size 0;
${Object.entries(p.headers).map(([k, v]) => `      proxy_set_header ${k} "${v}";\n`).join('')}    }
  }
`).join('')}}
`);
  return startProcess('nginx', 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { logDir: workDir });
}

export function keygen(workDir: string): { sec: string; pub: string } {
  const sec = join(workDir, 'bench-key.sec');
  const pub = join(workDir, 'bench-key.pub');
  if (!existsSync(sec)) run(process.execPath, [...NODE_FLAGS, CLI, 'keygen', 'eris-bench-1', sec, pub], { timeoutMs: 30_000, what: 'eris keygen' });
  return { sec, pub };
}

/**
 * `checkout`: another checkout of eris whose origin to run instead of this one's (an A/B of two versions in one run);
 * `nodeFlags`: more flags for node (V8's, e.g. `--max-semi-space-size=16`; cluster workers inherit them).
 */
export function startOrigin(name: string, opts: { workDir: string; root: string; port: number; signKey: string; edgeSecret: string; cpuProfDir?: string; workers?: number; checkout?: string; nodeFlags?: string[] }): Started {
  const flags = [...NODE_FLAGS, ...(opts.nodeFlags ?? [])];
  if (opts.cpuProfDir) flags.push('--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir);
  return startProcess(name, process.execPath, [
    ...flags, opts.checkout ? join(opts.checkout, 'origin/cli/index.ts') : CLI, 'serve', '--bind', `127.0.0.1:${opts.port}`, '--store-root', opts.root, '--sign-key', opts.signKey,
    ...(opts.workers && opts.workers > 1 ? ['--workers', String(opts.workers)] : []),
  ], { env: { ...process.env, ERIS_EDGE_SECRET: opts.edgeSecret }, logDir: opts.workDir, cwd: opts.workDir });
}

function wranglerEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: pathWithOurNode(), WRANGLER_SEND_METRICS: 'false', DO_NOT_TRACK: '1', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };
}

/** Registers a token in the local KV state that wrangler dev will use; returns it. */
export function addToken(stateDir: string): string {
  const out = run(process.execPath, [...NODE_FLAGS, CLI, 'token', 'add', 'bench', '--persist-to', stateDir], {
    env: wranglerEnv(), timeoutMs: 120_000, what: 'eris token add',
  });
  const token = out.trim().split('\n').pop()?.trim();
  if (!token) throw new Error('eris token add printed no token');
  return token;
}

/** The do-nothing baseline Worker (passthrough-worker.js) under wrangler dev, proxying to `upstream` with the edge secret. */
export function startPassthroughWorker(opts: { workDir: string; port: number; upstream: string; edgeSecret?: string }): Started {
  const dir = join(opts.workDir, 'passthrough');
  mkdirSync(dir, { recursive: true });
  copyFileSync(new URL('./passthrough-worker.js', import.meta.url).pathname, join(dir, 'index.js'));
  writeFileSync(join(dir, 'wrangler.toml'), 'name = "eris-bench-passthrough"\nmain = "index.js"\ncompatibility_date = "2026-08-01"\n');
  const args = [
    'dev', '--local', '--ip', '127.0.0.1', '--port', String(opts.port), '--show-interactive-dev-session=false',
    '--config', join(dir, 'wrangler.toml'), '--persist-to', join(dir, 'state'), '--inspector-port', '0', '--log-level', 'warn',
    '--var', `UPSTREAM:${opts.upstream}`,
  ];
  if (opts.edgeSecret) args.push('--var', `EDGE_SECRET:${opts.edgeSecret}`);
  return startProcess('wrangler-dev-passthrough', WRANGLER, args, { env: wranglerEnv(), logDir: opts.workDir, cwd: dir });
}

export function startWorker(opts: { workDir: string; stateDir: string; port: number; originPort: number; edgeSecret: string; anonymous: boolean }): Started {
  const envFile = join(opts.workDir, 'worker.env');
  writeFileSync(envFile, `ORIGIN_URL=http://127.0.0.1:${opts.originPort}\nEDGE_SECRET=${opts.edgeSecret}\n`, { mode: 0o600 });
  const args = [
    'dev', '--local', '--ip', '127.0.0.1', '--port', String(opts.port), '--show-interactive-dev-session=false',
    '--config', join(PROJECT_DIR, 'wrangler.toml'), '--persist-to', opts.stateDir, '--env-file', envFile,
    '--inspector-port', '0', '--log-level', 'warn',
  ];
  if (opts.anonymous) args.push('--var', 'ALLOW_ANONYMOUS:true');
  return startProcess('wrangler-dev', WRANGLER, args, { env: wranglerEnv(), logDir: opts.workDir, cwd: opts.workDir });
}

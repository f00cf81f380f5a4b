#!/usr/bin/env node
// The gateway against the proxies a user would otherwise put there, in one run (issue 5,
// "Speed"). One backend (a bare node:http server answering 13 bytes, or examples/hello with
// `--app hello`) is measured directly and through: the Lanes gateway (its process, started
// on a routing table with every edge feature on), HAProxy, nginx, Caddy and node
// http-proxy, each over HTTP and HTTPS, with 1 and 2 workers/threads.
//
// Method: wrk -t1 -c64 --latency pinned to CPU 0; proxies and the backend pinned to CPU 1
// (taskset; unpinned with a warning on a machine without it or with one core). Each
// measurement follows a warm-up run. CPU per request is the proxy's whole process tree
// (primary and workers) from /proc/PID/stat utime+stime before and after the measured run,
// divided by the requests wrk completed. The load average is printed before and after: the
// figures are only comparable within one run on a quiet machine.
//
//   node bench/gateway.mjs                 the comparison (table, ratios, targets, JSON)
//   node bench/gateway.mjs --app hello     with examples/hello as the backend
//   node bench/gateway.mjs --profile       the Lanes gateway alone (--workers 0) under
//                                          node --cpu-prof, HTTP and HTTPS, summarised
//
// Environment: BENCH_SECONDS (10), BENCH_WARMUP (3), BENCH_WORKERS ("1,2"),
// BENCH_PEERS (all: "direct,lanes,haproxy,nginx,caddy,undici,http-proxy"; undici is a bare
// node:http + undici proxy, the floor of any Node design), BENCH_HOSTS (50 other
// environments in the routing table), BENCH_GATEWAY_MAIN (another build of the gateway's
// main.js, to compare a change). Results: bench/results/gateway-<time>.json.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import dns from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { TABLE_FILE, validateTable } from '@lanes/gateway';
import { clockTicks, freePort, hasCommand, hasWrk, loadavg, ProcessSet, root, ticksBetween, treeTicks, wrkAsync } from './lib.mjs';
import { formatSummary, summarize } from './cpuprofile.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i === -1 ? fallback : argv[i + 1];
};
const settings = Object.freeze({
  seconds: Number(process.env.BENCH_SECONDS ?? 10),
  warmupS: Number(process.env.BENCH_WARMUP ?? 3),
  connections: 64,
  workers: (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number),
  peers: new Set((process.env.BENCH_PEERS ?? 'direct,lanes,haproxy,nginx,caddy,undici,http-proxy').split(',')),
  otherHosts: Number(process.env.BENCH_HOSTS ?? 50),
  app: option('--app', 'tiny'),
  profile: flag('--profile'),
});
for (const [name, ok] of [
  ['BENCH_SECONDS', Number.isInteger(settings.seconds) && settings.seconds >= 1],
  ['BENCH_WARMUP', Number.isInteger(settings.warmupS) && settings.warmupS >= 0],
  ['BENCH_WORKERS', settings.workers.every((n) => Number.isInteger(n) && n >= 1 && n <= 64)],
  ['BENCH_HOSTS', Number.isInteger(settings.otherHosts) && settings.otherHosts >= 0 && settings.otherHosts <= 10_000],
  ['--app', settings.app === 'tiny' || settings.app === 'hello'],
]) {
  if (!ok) {
    console.error(`bench/gateway: ${name} is not valid; see the header of bench/gateway.mjs`);
    process.exit(2);
  }
}

const GATEWAY_MAIN = path.resolve(process.env.BENCH_GATEWAY_MAIN ?? path.join(root, 'packages', 'gateway', 'dist', 'main.js'));
const TICKS = clockTicks();
const ps = new ProcessSet();

// ---------------------------------------------------------------------------------------
// Preconditions

if (!hasWrk()) {
  console.error('bench/gateway: wrk is not installed (Debian: apt-get install wrk)');
  process.exit(1);
}
if (!existsSync(GATEWAY_MAIN)) {
  console.error(`bench/gateway: ${GATEWAY_MAIN} is missing; build first: npx tsc -b packages/gateway`);
  process.exit(1);
}

/** CPUs for wrk and for the proxies; null when the machine cannot keep them apart. */
function pinning() {
  if (os.availableParallelism() < 2) return { cpus: null, warning: `only ${os.availableParallelism()} CPU: wrk, the proxies and the backend share it (figures are lower and noisier)` };
  if (!hasCommand('taskset', ['-V'])) return { cpus: null, warning: 'taskset is missing (Debian: util-linux): nothing is pinned, wrk competes with the proxies for both CPUs' };
  return { cpus: { load: 0, serve: 1 }, warning: null };
}
const pin = pinning();
const LOAD_CPU = pin.cpus?.load ?? null;
const SERVE_CPU = pin.cpus?.serve ?? null;

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    return `${err.stdout ?? ''}${err.stderr ?? ''}`.split('\n')[0].trim() || null;
  }
}

function nginxVersion() {
  try {
    // nginx -v prints to stderr.
    return execFileSync('nginx', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || 'nginx';
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    return String(err.stderr ?? 'nginx').trim();
  }
}

const versions = {
  node: process.version,
  wrk: firstLine('wrk', ['--version']),
  haproxy: firstLine('haproxy', ['-v']),
  nginx: nginxVersion(),
  caddy: firstLine('caddy', ['version']),
  openssl: firstLine('openssl', ['version']),
};

// ---------------------------------------------------------------------------------------
// Shared material: the host name, its certificate, the backend

/**
 * The host name clients use. wrk sends its URL's host as SNI and resolves it with
 * getaddrinfo, so the HTTPS URL must name a host that resolves to loopback and that the
 * gateway has a certificate for. `*.localhost` resolves only where nss-myhostname or
 * systemd-resolved is set up; otherwise `localhost` itself (in every /etc/hosts) is used.
 */
async function pickHost() {
  const wanted = 'prod.bench.localhost';
  try {
    const { address } = await dns.lookup(wanted, { family: 4 });
    if (address.startsWith('127.')) return wanted;
  } catch {
    // Not resolvable here.
  }
  return 'localhost';
}

/** A self-signed ECDSA P-256 certificate for the host, localhost and 127.0.0.1 (openssl, argv). */
function makeCertificate(dir, host) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '7', '-subj', `/CN=${host}`,
    '-addext', `subjectAltName=DNS:${host},DNS:localhost,IP:127.0.0.1`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const certPem = readFileSync(cert, 'utf8');
  const keyPem = readFileSync(key, 'utf8');
  // HAProxy wants the certificate and its key in one file.
  const combined = path.join(dir, 'combined.pem');
  writeFileSync(combined, certPem + keyPem, { mode: 0o600 });
  return { cert, key, combined, certPem, keyPem, notAfter: new Date(new X509Certificate(certPem).validTo).toISOString() };
}

/** One GET; resolves to { status, body } or rejects. */
function probe(url, host, ca) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers: { host }, agent: false, timeout: 2_000, ...(u.protocol === 'https:' ? { ca, servername: u.hostname } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Waits until `url` answers 200 with the backend's body; throws with the last problem. */
async function waitServing(url, host, ca, expect, { timeoutMs = 30_000, child = null, log = null } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child !== null && (child.exitCode !== null || child.signalCode !== null)) break;
    try {
      const r = await probe(url, host, ca);
      if (r.status === 200 && r.body.includes(expect)) return r;
      last = `status ${r.status}: ${r.body.slice(0, 200).trim()}`;
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const tail = log !== null && existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n    ') : '';
  const exited = child !== null && (child.exitCode !== null || child.signalCode !== null) ? ` (exited ${child.exitCode ?? child.signalCode})` : '';
  throw new Error(`${url} not serving${exited}: ${last}${tail ? `\n    ${tail}` : ''}`);
}

async function startBackend(dir) {
  const port = await freePort();
  const log = path.join(dir, 'backend.log');
  let child;
  let expect;
  if (settings.app === 'hello') {
    child = await ps.spawn(process.execPath, [path.join(root, 'examples', 'hello', 'server.js')], { cpu: SERVE_CPU, env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LANES_INSTANCE: 'bench-web-1', LANES_ZONE: 'a' }, log });
    expect = 'hello from';
  } else {
    child = await ps.spawn(process.execPath, [path.join(root, 'bench', 'support', 'backend.mjs')], { cpu: SERVE_CPU, env: { ...process.env, PORT: String(port) }, log });
    expect = 'hello, lanes';
  }
  const url = `http://127.0.0.1:${port}/`;
  const first = await waitServing(url, 'backend', undefined, expect, { child, log });
  return { child, port, url, expect, bodyBytes: Buffer.byteLength(first.body) };
}

// ---------------------------------------------------------------------------------------
// The peers. Each start(n) returns { child, httpUrl, httpsUrl, notes, extra? }.

/**
 * The Lanes routing table: the benchmarked host with two path routes to the backend, each
 * with least-outstanding balancing, an active health check, outlier detection and its own
 * timeout; the environment's edge settings all on (allow and deny lists, per-client and
 * per-environment rate limits high enough never to refuse, a body limit, a connection limit
 * checked per request, HSTS); its certificate for HTTPS; and BENCH_HOSTS other
 * environments so that the lookups work on a table of realistic size. Only the HTTPS
 * redirect is off: it would answer the HTTP run with 308s.
 */
function lanesTable(host, backendPort, tlsMaterial, bare = false) {
  const endpoint = { instance: 'bench-web-1', zone: 'a', address: '127.0.0.1', port: backendPort };
  const route = (pathPrefix, service) => ({
    pathPrefix,
    service,
    endpoints: [endpoint],
    balance: 'least_outstanding',
    sticky: null,
    timeoutMs: 30_000,
    health: { path: '/healthz', intervalMs: 1_000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] },
    outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 },
  });
  const hosts = [
    {
      host,
      tenant: 'bench',
      environment: 'prod',
      routes: [route('/', 'web'), route('/api/', 'api')],
      edge: {
        allow: ['127.0.0.0/8', '::1/128'],
        deny: ['192.0.2.0/24', '2001:db8::/32'],
        clientRate: { rps: 1_000_000, burst: 1_000_000 },
        environmentRate: { rps: 1_000_000, burst: 1_000_000 },
        maxBodyBytes: 1_048_576,
        maxConnectionsPerClient: 4_096,
        httpsRedirect: false,
        hstsMaxAgeS: 31_536_000,
      },
      tls: { certPem: tlsMaterial.certPem, keyPem: tlsMaterial.keyPem, source: 'custom', notAfter: tlsMaterial.notAfter },
    },
  ];
  if (bare) {
    // Routing only (and the certificate, for HTTPS): what the features cost is the difference.
    hosts[0] = { host, tenant: 'bench', environment: 'prod', routes: [{ pathPrefix: '/', service: 'web', endpoints: [endpoint] }], tls: hosts[0].tls };
  }
  for (let i = 0; i < settings.otherHosts; i++) {
    hosts.push({ host: `prod.t${i}.lanes.localhost`, tenant: `t${i}`, environment: 'prod', routes: [{ pathPrefix: '/', service: 'web', endpoints: [{ ...endpoint, instance: `t${i}-web-1` }] }] });
  }
  const table = { revision: 1, generatedAt: new Date().toISOString(), hosts, tcp: [] };
  // Fails here with the validator's one-line message naming the field, not in the gateway's log.
  validateTable(table);
  return table;
}

/** The gateway process on a fresh state directory holding the table. */
async function startLanes(n, ctx, { nodeArgs = [], workers = n, bare = false } = {}) {
  const dir = ps.tempDir('lanes-bench-gw-');
  writeFileSync(path.join(dir, TABLE_FILE), JSON.stringify(lanesTable(ctx.host, ctx.backend.port, ctx.tls, bare)));
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const log = path.join(dir, 'gateway.log');
  const args = [
    ...nodeArgs, GATEWAY_MAIN,
    '--state-dir', dir, '--http-port', String(httpPort), '--https-port', String(httpsPort), '--workers', String(workers),
    '--admin-port', String(adminPort), '--log-level', 'warn',
    // Above the environment's own limit (4096), so that limit is checked per request.
    '--max-connections-per-client', '8192',
  ];
  const child = await ps.spawn(process.execPath, args, { cpu: SERVE_CPU, log });
  return {
    child, log, dir,
    httpUrl: `http://127.0.0.1:${httpPort}/`,
    httpsUrl: `https://${ctx.host}:${httpsPort}/`,
    adminUrl: workers > 0 ? `http://127.0.0.1:${adminPort}/metrics` : null,
    notes: `${workers === 0 ? 'one process (--workers 0)' : `${workers} worker${workers > 1 ? 's' : ''} + primary`}; ${bare ? 'routing only (no edge settings, no health check)' : 'every edge feature on'}; access log written`,
  };
}

/**
 * HAProxy with the same features as the Lanes table where HAProxy has them: keep-alive,
 * X-Forwarded-For/-Proto, a request id, leastconn, an active health check, the allow-list,
 * a per-client request-rate table (limit never reached), a body limit, HSTS over HTTPS.
 */
async function startHaproxy(n, ctx) {
  const dir = ps.tempDir('lanes-bench-haproxy-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global',
    `  nbthread ${n}`,
    // HAProxy raises its descriptor limit to about twice this; it must fit the process's own.
    '  maxconn 4096',
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  option forwardfor',
    '  timeout connect 2s',
    '  timeout client 15s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 15s',
    'frontend fe',
    `  bind 127.0.0.1:${httpPort}`,
    `  bind 127.0.0.1:${httpsPort} ssl crt ${ctx.tls.combined} alpn http/1.1`,
    '  stick-table type ip size 100k expire 30s store http_req_rate(1s)',
    '  http-request deny deny_status 403 unless { src 127.0.0.0/8 }',
    '  http-request track-sc0 src',
    '  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000 }',
    '  http-request deny deny_status 413 if { req.hdr_val(content-length) gt 1048576 }',
    '  unique-id-format %[uuid()]',
    '  http-request set-header X-Request-Id %[unique-id]',
    '  http-request set-header X-Forwarded-Proto https if { ssl_fc }',
    '  http-request set-header X-Forwarded-Proto http unless { ssl_fc }',
    '  http-response set-header Strict-Transport-Security max-age=31536000 if { ssl_fc }',
    '  default_backend be',
    'backend be',
    '  balance leastconn',
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    `  server s1 127.0.0.1:${ctx.backend.port} check inter 1s fall 2 rise 2`,
    '',
  ].join('\n'));
  try {
    execFileSync('haproxy', ['-c', '-q', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`haproxy refused its configuration: ${String(err.stderr ?? err.message).trim().split('\n').slice(0, 3).join(' / ')}`);
  }
  const log = path.join(dir, 'haproxy.log');
  const child = await ps.spawn('haproxy', ['-db', '-f', cfg], { cpu: SERVE_CPU, log });
  return { child, log, httpUrl: `http://127.0.0.1:${httpPort}/`, httpsUrl: `https://${ctx.host}:${httpsPort}/`, notes: `nbthread ${n}; allow-list, rate table, request id, health check, HSTS` };
}

/** nginx: upstream keep-alive pool, X-Forwarded-*, N worker processes (open source nginx has passive checks only). */
async function startNginx(n, ctx) {
  const dir = ps.tempDir('lanes-bench-nginx-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'nginx.conf');
  const t = (name) => path.join(dir, name);
  writeFileSync(conf, `
worker_processes ${n};
daemon off;
master_process on;
pid ${t('nginx.pid')};
error_log ${t('error.log')} warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  keepalive_timeout 15s;
  client_max_body_size 1m;
  upstream be {
    server 127.0.0.1:${ctx.backend.port} max_fails=5 fail_timeout=10s;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${ctx.tls.cert};
    ssl_certificate_key ${ctx.tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      allow 127.0.0.0/8;
      deny all;
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Id $request_id;
    }
  }
}
`);
  const log = path.join(dir, 'nginx.out');
  const child = await ps.spawn('nginx', ['-p', dir, '-c', conf], { cpu: SERVE_CPU, log });
  return { child, log: t('error.log'), httpUrl: `http://127.0.0.1:${httpPort}/`, httpsUrl: `https://${ctx.host}:${httpsPort}/`, notes: `worker_processes ${n}; keepalive pool, allow-list, passive checks` };
}

/** Caddy from a JSON config: admin endpoint off, no automatic HTTPS, the same certificate loaded from files, GOMAXPROCS = N. */
async function startCaddy(n, ctx) {
  const dir = ps.tempDir('lanes-bench-caddy-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const route = {
    handle: [
      {
        handler: 'reverse_proxy',
        upstreams: [{ dial: `127.0.0.1:${ctx.backend.port}` }],
        load_balancing: { selection_policy: { policy: 'least_conn' } },
        health_checks: { active: { uri: '/healthz', interval: '1s', timeout: '500ms' } },
        transport: { protocol: 'http', keep_alive: { enabled: true, max_idle_conns_per_host: 128 } },
      },
    ],
  };
  const config = {
    admin: { disabled: true },
    logging: { logs: { default: { level: 'ERROR' } } },
    storage: { module: 'file_system', root: path.join(dir, 'data') },
    apps: {
      http: {
        servers: {
          plain: { listen: [`127.0.0.1:${httpPort}`], protocols: ['h1'], automatic_https: { disable: true }, routes: [route] },
          secure: { listen: [`127.0.0.1:${httpsPort}`], protocols: ['h1'], automatic_https: { disable: true }, tls_connection_policies: [{ protocol_min: 'tls1.2' }], routes: [route] },
        },
      },
      tls: { certificates: { load_files: [{ certificate: ctx.tls.cert, key: ctx.tls.key }] } },
    },
  };
  const file = path.join(dir, 'caddy.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const log = path.join(dir, 'caddy.log');
  const env = { ...process.env, GOMAXPROCS: String(n), HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'), XDG_CONFIG_HOME: path.join(dir, 'config') };
  const child = await ps.spawn('caddy', ['run', '--config', file], { cpu: SERVE_CPU, env, log });
  return { child, log, httpUrl: `http://127.0.0.1:${httpPort}/`, httpsUrl: `https://${ctx.host}:${httpsPort}/`, notes: `GOMAXPROCS ${n}; keep-alive, X-Forwarded-*, health check` };
}

/** node:http + undici with nothing else, N cluster workers (bench/support/undici-proxy.mjs): the floor of any Node proxy. */
async function startUndici(n, ctx) {
  const dir = ps.tempDir('lanes-bench-undici-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const log = path.join(dir, 'proxy.log');
  const env = { ...process.env, WORKERS: String(n), TARGET: `http://127.0.0.1:${ctx.backend.port}`, HTTP_PORT: String(httpPort), HTTPS_PORT: String(httpsPort), CERT: ctx.tls.cert, KEY: ctx.tls.key };
  const child = await ps.spawn(process.execPath, [path.join(root, 'bench', 'support', 'undici-proxy.mjs')], { cpu: SERVE_CPU, env, log });
  return { child, log, httpUrl: `http://127.0.0.1:${httpPort}/`, httpsUrl: `https://${ctx.host}:${httpsPort}/`, notes: `${n} cluster worker${n > 1 ? 's' : ''} + primary; no routing, checks or log` };
}

/** node http-proxy in one process (bench/support/node-proxy.mjs). */
async function startHttpProxy(_n, ctx) {
  const dir = ps.tempDir('lanes-bench-http-proxy-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const log = path.join(dir, 'proxy.log');
  const env = { ...process.env, TARGET: `http://127.0.0.1:${ctx.backend.port}`, HTTP_PORT: String(httpPort), HTTPS_PORT: String(httpsPort), CERT: ctx.tls.cert, KEY: ctx.tls.key };
  const child = await ps.spawn(process.execPath, [path.join(root, 'bench', 'support', 'node-proxy.mjs')], { cpu: SERVE_CPU, env, log });
  return { child, log, httpUrl: `http://127.0.0.1:${httpPort}/`, httpsUrl: `https://${ctx.host}:${httpsPort}/`, notes: 'one process; keep-alive agent, xfwd' };
}

const PEERS = [
  { id: 'haproxy', label: 'HAProxy', perWorkers: true, available: () => (versions.haproxy ? null : 'haproxy is not installed (Debian: apt-get install haproxy)'), start: startHaproxy },
  { id: 'lanes', label: 'Lanes gateway', perWorkers: true, available: () => null, start: startLanes },
  // Only when named in BENCH_PEERS: the same gateway on a table without the edge features.
  { id: 'lanes-bare', label: 'Lanes, bare table', perWorkers: true, available: () => null, start: (n, ctx) => startLanes(n, ctx, { bare: true }) },
  { id: 'nginx', label: 'nginx', perWorkers: true, available: () => (versions.nginx ? null : 'nginx is not installed (Debian: apt-get install nginx-light, or nginx); skipped'), start: startNginx },
  { id: 'caddy', label: 'Caddy', perWorkers: true, available: () => (versions.caddy ? null : 'caddy is not installed (Debian: apt-get install caddy); skipped'), start: startCaddy },
  { id: 'undici', label: 'node+undici floor', perWorkers: true, available: () => null, start: startUndici },
  { id: 'http-proxy', label: 'node http-proxy', perWorkers: false, available: () => (existsSync(path.join(root, 'node_modules', 'http-proxy')) ? null : 'the http-proxy package is missing (npm ci at the repository root)'), start: startHttpProxy },
];

// ---------------------------------------------------------------------------------------
// Measuring

/** Warm-up, then the measured wrk run with the CPU of the proxy's and the backend's process trees. */
async function measure(url, ctx, proxyPid) {
  await wrkAsync(url, { durationS: ctx.warmupS, connections: settings.connections, host: ctx.host, cpu: LOAD_CPU });
  const load1 = loadavg().one;
  const proxyBefore = proxyPid === null ? null : treeTicks(proxyPid);
  const backendBefore = treeTicks(ctx.backend.child.pid);
  const r = await wrkAsync(url, { durationS: settings.seconds, connections: settings.connections, host: ctx.host, cpu: LOAD_CPU });
  const proxyTicks = proxyPid === null ? null : ticksBetween(proxyBefore, treeTicks(proxyPid));
  const backendTicks = ticksBetween(backendBefore, treeTicks(ctx.backend.child.pid));
  const perRequestUs = (ticks) => (ticks === null || !(r.requests > 0) ? null : Math.round(((ticks * 1e6) / TICKS / r.requests) * 10) / 10);
  return {
    rps: Math.round(r.rps),
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    requests: r.requests,
    non2xx: r.non2xx,
    socketErrors: r.socketErrors,
    proxyCpuUsPerRequest: perRequestUs(proxyTicks),
    backendCpuUsPerRequest: perRequestUs(backendTicks),
    proxyCpuPercent: proxyTicks === null ? null : Math.round((proxyTicks * 100) / TICKS / settings.seconds),
    load1,
  };
}

/** Starts a peer, checks it answers with the backend's body (HTTP and HTTPS), measures both, stops it. */
async function runPeer(peer, n, ctx, results) {
  const tag = peer.perWorkers ? `${peer.label} (${n})` : peer.label;
  let started;
  try {
    started = await peer.start(n, ctx);
  } catch (err) {
    console.log(`  ${tag}: not started: ${err.message}`);
    results.push({ peer: peer.id, workers: peer.perWorkers ? n : 1, proto: 'http', error: err.message });
    return;
  }
  try {
    for (const proto of ['http', 'https']) {
      const url = proto === 'http' ? started.httpUrl : started.httpsUrl;
      const base = { peer: peer.id, workers: peer.perWorkers ? n : 1, proto, notes: started.notes };
      try {
        const first = await waitServing(url, ctx.host, [ctx.tls.certPem], ctx.backend.expect, { child: started.child, log: started.log });
        const m = await measure(url, ctx, started.child.pid);
        results.push({ ...base, ...m, responseHeaders: Object.keys(first.headers).sort() });
        console.log(`  ${tag.padEnd(20)} ${proto.padEnd(5)} ${String(m.rps).padStart(7)} req/s  p50 ${fmt(m.p50Ms)} ms  p99 ${fmt(m.p99Ms)} ms  ${fmt(m.proxyCpuUsPerRequest, 1)} µs CPU/req  (load ${m.load1})`);
      } catch (err) {
        console.log(`  ${tag.padEnd(20)} ${proto.padEnd(5)} failed: ${err.message}`);
        results.push({ ...base, error: err.message });
        if (started.child.exitCode !== null || started.child.signalCode !== null) break;
      }
    }
    if (started.adminUrl) {
      // The metrics endpoint is on too: read it once so a broken one shows up here.
      try {
        const r = await probe(started.adminUrl, '127.0.0.1');
        if (r.status !== 200 || !r.body.includes('bench')) console.log(`  ${tag}: GET /metrics answered ${r.status}`);
      } catch (err) {
        console.log(`  ${tag}: GET /metrics failed: ${err.message}`);
      }
    }
  } finally {
    await ps.stop(started.child);
  }
}

function fmt(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(digits);
}

// ---------------------------------------------------------------------------------------
// Report

function find(results, peer, n, proto) {
  return results.find((r) => r.peer === peer && (r.workers === n || r.peer === 'http-proxy' || r.peer === 'direct') && r.proto === proto && r.error === undefined) ?? null;
}

const ratio = (a, b) => (a === null || b === null || a === undefined || b === undefined || !(b > 0) ? null : a / b);

/** The issue's targets for the Lanes gateway with `n` workers over `proto`. */
function targets(results, n, proto) {
  const lanes = find(results, 'lanes', n, proto);
  const hap = find(results, 'haproxy', n, proto);
  const caddy = find(results, 'caddy', n, proto);
  const hp = find(results, 'http-proxy', n, proto);
  const check = (name, value, pass, shown) => ({ name, value, pass: value === null ? null : pass, shown: value === null ? 'no figure' : shown });
  const rps = ratio(lanes?.rps, hap?.rps);
  const vsCaddy = ratio(lanes?.rps, caddy?.rps);
  const vsHp = ratio(lanes?.rps, hp?.rps);
  const p99 = ratio(lanes?.p99Ms, hap?.p99Ms);
  const cpu = ratio(lanes?.proxyCpuUsPerRequest, hap?.proxyCpuUsPerRequest);
  return [
    check('req/s >= 0.5x HAProxy', rps, rps >= 0.5, `${fmt(rps)}x`),
    check('ahead of Caddy (req/s)', vsCaddy, vsCaddy > 1, `${fmt(vsCaddy)}x`),
    check('req/s >= 2x node http-proxy', vsHp, vsHp >= 2, `${fmt(vsHp)}x`),
    check('p99 <= 2x HAProxy', p99, p99 <= 2, `${fmt(p99)}x`),
    check('CPU/request <= 2.5x HAProxy', cpu, cpu <= 2.5, `${fmt(cpu)}x`),
  ];
}

function report(results, meta) {
  const lines = [];
  const head = `${'peer'.padEnd(18)} ${'proto'.padEnd(5)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'non-2xx'.padStart(7)} ${'errors'.padStart(6)} ${'proxy µs/req'.padStart(12)} ${'proxy CPU'.padStart(9)} ${'backend µs/req'.padStart(14)} ${'vs HAProxy: req/s'.padStart(17)} ${'p99'.padStart(6)} ${'CPU/req'.padStart(7)}`;
  const row = (label, r, hap) =>
    r.error !== undefined
      ? `${label.padEnd(18)} ${r.proto.padEnd(5)} failed: ${r.error.split('\n')[0]}`
      : `${label.padEnd(18)} ${r.proto.padEnd(5)} ${String(r.rps).padStart(7)} ${fmt(r.p50Ms).padStart(7)} ${fmt(r.p99Ms).padStart(7)} ${String(r.non2xx).padStart(7)} ${String(r.socketErrors).padStart(6)} ${fmt(r.proxyCpuUsPerRequest, 1).padStart(12)} ${(r.proxyCpuPercent === null ? '-' : `${r.proxyCpuPercent}%`).padStart(9)} ${fmt(r.backendCpuUsPerRequest, 1).padStart(14)} ${(hap && r.peer !== 'haproxy' ? `${fmt(ratio(r.rps, hap.rps))}x` : '').padStart(17)} ${(hap && r.peer !== 'haproxy' ? `${fmt(ratio(r.p99Ms, hap.p99Ms))}x` : '').padStart(6)} ${(hap && r.peer !== 'haproxy' && r.proxyCpuUsPerRequest !== null ? `${fmt(ratio(r.proxyCpuUsPerRequest, hap.proxyCpuUsPerRequest))}x` : '').padStart(7)}`;
  lines.push('');
  lines.push(`bench/gateway  ${meta.time}  node ${versions.node}, ${os.availableParallelism()} CPUs, ${meta.pinning}`);
  lines.push(`backend: ${meta.backend}; host ${meta.host} (Host header and SNI); wrk -t1 -c${settings.connections} -d${settings.seconds}s --latency after a ${settings.warmupS}s warm-up`);
  lines.push(`load average before ${meta.loadBefore.join(' ')}, after ${meta.loadAfter.join(' ')}${meta.loadAfter[0] > 0.5 + 2 ? '  (busy machine: compare ratios, not absolute figures)' : ''}`);
  for (const n of settings.workers) {
    lines.push('');
    lines.push(`-- ${n} worker${n > 1 ? 's' : ''}/thread${n > 1 ? 's' : ''} (Lanes --workers ${n}, HAProxy nbthread ${n}, nginx worker_processes ${n}, Caddy GOMAXPROCS ${n}; direct and http-proxy are one process)`);
    lines.push(head);
    for (const proto of ['http', 'https']) {
      const hap = find(results, 'haproxy', n, proto);
      const rows = [];
      if (proto === 'http') rows.push(['direct', results.find((r) => r.peer === 'direct')]);
      for (const p of PEERS) {
        const r = results.find((x) => x.peer === p.id && x.proto === proto && (p.perWorkers ? x.workers === n : true)) ?? (proto === 'http' ? results.find((x) => x.peer === p.id && x.error !== undefined && (p.perWorkers ? x.workers === n : true)) : undefined);
        rows.push([p.label, r]);
      }
      for (const [label, r] of rows) if (r !== undefined) lines.push(row(label, r, hap));
    }
    for (const proto of ['http', 'https']) {
      const marks = targets(results, n, proto);
      lines.push(`targets, Lanes --workers ${n} over ${proto.toUpperCase()}${proto === 'https' ? ' (the issue sets them for HTTP; shown for reference)' : ''}:`);
      for (const t of marks) lines.push(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name.padEnd(30)} ${t.shown}`);
    }
  }
  for (const s of meta.skipped) lines.push(`skipped: ${s}`);
  return lines;
}

// ---------------------------------------------------------------------------------------
// Profile mode

/** The Lanes gateway as one process under node --cpu-prof, loaded over `proto`; the profile summarised. */
async function profileRun(proto, ctx, outDir, stamp) {
  const profDir = ps.tempDir('lanes-bench-prof-');
  const started = await startLanes(0, ctx, { workers: 0, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] });
  const url = proto === 'http' ? started.httpUrl : started.httpsUrl;
  let m;
  try {
    await waitServing(url, ctx.host, [ctx.tls.certPem], ctx.backend.expect, { child: started.child, log: started.log });
    m = await measure(url, ctx, started.child.pid);
  } finally {
    // The profile is written when the process exits (SIGTERM: drain, then exit 0).
    await ps.stop(started.child, 20_000);
  }
  const file = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (file === undefined) throw new Error(`no .cpuprofile written in ${profDir}; see ${started.log}`);
  const kept = path.join(outDir, `gateway-profile-${stamp}-${proto}.cpuprofile`);
  copyFileSync(file, kept);
  const summary = summarize(JSON.parse(readFileSync(file, 'utf8')), 30);
  return { proto, measurement: m, profile: path.relative(root, kept), summary };
}

// ---------------------------------------------------------------------------------------
// Main

async function main() {
  const time = new Date().toISOString();
  const stamp = time.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const outDir = path.join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const loadBefore = loadavg();
  if (pin.warning !== null) console.warn(`bench/gateway: warning: ${pin.warning}`);
  const work = ps.tempDir('lanes-bench-gateway-');
  const host = await pickHost();
  const tls = makeCertificate(work, host);
  const backend = await startBackend(work);
  const ctx = { host, tls, backend, warmupS: settings.warmupS };
  const pinningText = pin.cpus === null ? 'not pinned' : `wrk on CPU ${LOAD_CPU}, proxies and backend on CPU ${SERVE_CPU}`;
  const backendText = settings.app === 'hello' ? `examples/hello (node:http, ${backend.bodyBytes}-byte JSON)` : `bench/support/backend.mjs (node:http, ${backend.bodyBytes}-byte body)`;
  console.log(`bench/gateway: ${backendText}; host ${host}; ${pinningText}; load ${loadBefore.one} ${loadBefore.five} ${loadBefore.fifteen}`);

  if (settings.profile) {
    const runs = [];
    for (const proto of ['http', 'https']) {
      const r = await profileRun(proto, ctx, outDir, stamp);
      runs.push(r);
      console.log('');
      console.log(`Lanes gateway, one process (--workers 0), ${proto.toUpperCase()}: ${r.measurement.rps} req/s, p50 ${fmt(r.measurement.p50Ms)} ms, p99 ${fmt(r.measurement.p99Ms)} ms, ${fmt(r.measurement.proxyCpuUsPerRequest, 1)} µs CPU/req (profiler on), non-2xx ${r.measurement.non2xx}, errors ${r.measurement.socketErrors}`);
      console.log(`profile kept in ${r.profile}`);
      for (const line of formatSummary(r.summary)) console.log(line);
    }
    const loadAfter = loadavg();
    console.log(`\nload average before ${loadBefore.one} ${loadBefore.five} ${loadBefore.fifteen}, after ${loadAfter.one} ${loadAfter.five} ${loadAfter.fifteen}`);
    const file = path.join(outDir, `gateway-profile-${stamp}.json`);
    writeFileSync(file, `${JSON.stringify({ time, versions, settings: { ...settings, peers: [...settings.peers] }, host, loadBefore, loadAfter, runs }, null, 2)}\n`);
    console.log(`results: ${path.relative(root, file)}`);
    return;
  }

  const results = [];
  const skipped = [];
  if (settings.peers.has('direct')) {
    console.log('measuring (each: warm-up, then the measured run):');
    const m = await measure(backend.url, ctx, null);
    results.push({ peer: 'direct', workers: 1, proto: 'http', notes: 'wrk straight to the backend', ...m });
    console.log(`  ${'direct'.padEnd(20)} http  ${String(m.rps).padStart(7)} req/s  p50 ${fmt(m.p50Ms)} ms  p99 ${fmt(m.p99Ms)} ms  backend ${fmt(m.backendCpuUsPerRequest, 1)} µs CPU/req  (load ${m.load1})`);
  }
  const available = [];
  for (const p of PEERS) {
    if (!settings.peers.has(p.id)) continue;
    const why = p.available();
    if (why !== null) {
      skipped.push(why);
      console.log(`  ${p.label}: ${why}`);
      results.push({ peer: p.id, workers: null, proto: 'http', error: why });
    } else available.push(p);
  }
  for (const n of settings.workers) {
    for (const p of available) if (p.perWorkers) await runPeer(p, n, ctx, results);
  }
  for (const p of available) if (!p.perWorkers) await runPeer(p, 1, ctx, results);
  const loadAfter = loadavg();

  const meta = {
    time,
    pinning: pinningText,
    backend: backendText,
    host,
    loadBefore: [loadBefore.one, loadBefore.five, loadBefore.fifteen],
    loadAfter: [loadAfter.one, loadAfter.five, loadAfter.fifteen],
    skipped,
  };
  for (const line of report(results, meta)) console.log(line);
  const summary = Object.fromEntries(settings.workers.flatMap((n) => ['http', 'https'].map((proto) => [`workers=${n} ${proto}`, targets(results, n, proto).map((t) => ({ target: t.name, ratio: t.value === null ? null : Math.round(t.value * 100) / 100, pass: t.pass }))])));
  const file = path.join(outDir, `gateway-${stamp}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        ...meta,
        versions,
        method: {
          wrk: `wrk -t1 -c${settings.connections} -d${settings.seconds}s --latency -H 'Host: ${host}' (after a ${settings.warmupS}s warm-up)`,
          pinning: pinningText,
          cpuPerRequest: `utime+stime of the proxy's process tree from /proc/PID/stat over the measured run (CLK_TCK ${TICKS}), divided by the requests wrk completed`,
          otherHosts: settings.otherHosts,
        },
        targets: summary,
        results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nresults: ${path.relative(root, file)}`);
}

try {
  await main();
} catch (err) {
  console.error(`bench/gateway: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await ps.cleanup();
}

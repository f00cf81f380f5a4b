import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from './errors.js';
import { HEALTH_DEFAULTS, MAX_MANIFEST_BYTES, parseManifest, validateManifest } from './manifest.js';

/** Asserts parseManifest refuses `text` with exactly `message` and `field`. */
function refuses(text: string, message: string, field?: string): void {
  assert.throws(
    () => parseManifest(text),
    (err: unknown) => {
      assert.ok(err instanceof InputError, `expected an InputError, got ${String(err)}`);
      assert.equal(err.message, message);
      if (field !== undefined) assert.equal(err.field, field);
      return true;
    },
  );
}

const web = (extra = ''): string => `name: hello\nservices:\n  web:\n    command: node server.js\n${extra}`;

describe('parseManifest', () => {
  it('normalises a minimal manifest with defaults', () => {
    const m = parseManifest(web());
    assert.deepEqual(m, {
      name: 'hello',
      services: [
        { name: 'web', command: 'node server.js', argv: ['node', 'server.js'], instances: 1, http: false, path: null, port: null, health: null, env: {}, stopGraceMs: 10_000, allowFrom: null, autoscale: null, maxSurge: null, maxUnavailable: null,
          balance: 'round_robin', sticky: null, timeoutMs: 30_000, outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 }, tcp: false, primaryCheck: null,
          limits: { memoryBytes: 512 * 1024 ** 2, cpus: 1, pids: 512 } },
      ],
      deadlineMs: 60_000,
    });
  });

  it('reads resource limits, and refuses sizes and counts out of range in one line', () => {
    assert.deepEqual(parseManifest(web('    limits: { memory: 256mb, cpu: 0.5, pids: 128 }\n')).services[0]?.limits, { memoryBytes: 256 * 1024 ** 2, cpus: 0.5, pids: 128 });
    assert.deepEqual(parseManifest(web('    limits: { memory: 1gb }\n')).services[0]?.limits, { memoryBytes: 1024 ** 3, cpus: 1, pids: 512 });
    refuses(web('    limits: { memory: lots }\n'), 'lanes.yaml: services.web.limits.memory: "lots" is not a size; use e.g. 256mb or 1gb', 'services.web.limits.memory');
    refuses(web('    limits: { memory: 1mb }\n'), 'lanes.yaml: services.web.limits.memory: "1mb" is out of range; use 32mb to 64gb', 'services.web.limits.memory');
    assert.throws(() => parseManifest(web('    limits: { pids: 2 }\n')), /services\.web\.limits\.pids: must be at least 16/);
    assert.throws(() => parseManifest(web('    limits: { cpu: 0 }\n')), /services\.web\.limits\.cpu: must be at least 0\.05/);
    assert.throws(() => parseManifest(web('    limits: { disk: 1gb }\n')), /services\.web\.limits/);
  });

  it('applies the health check defaults (1000/500/2/2)', () => {
    const m = parseManifest(web('    http: true\n    health: { path: /healthz }\n'));
    assert.deepEqual(m.services[0]?.health, { path: '/healthz', intervalMs: 1000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] });
    assert.deepEqual(HEALTH_DEFAULTS, { intervalMs: 1000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2, expectStatus: [200, 399] });
  });

  it('parses durations and thresholds given explicitly', () => {
    const m = parseManifest(web('    health: { path: /h, interval: 2s, timeout: 250ms, healthy_threshold: 3, unhealthy_threshold: 5 }\n    stop_grace: 1m\n'));
    assert.deepEqual(m.services[0]?.health, { path: '/h', intervalMs: 2000, timeoutMs: 250, healthyThreshold: 3, unhealthyThreshold: 5, expectStatus: [200, 399] });
    assert.equal(m.services[0]?.stopGraceMs, 60_000);
  });

  it('reads the load-balancing settings of an http service', () => {
    const m = parseManifest(
      web('    http: true\n    balance: least_outstanding\n    sticky: { cookie: srv, ttl: 1h }\n    timeout: 5s\n    outlier: { consecutive_failures: 3, base_ejection: 2s }\n    health: { path: /h, expect_status: 200-299 }\n'),
    );
    const s = m.services[0];
    assert.equal(s?.balance, 'least_outstanding');
    assert.deepEqual(s?.sticky, { cookie: 'srv', ttlMs: 3_600_000 });
    assert.equal(s?.timeoutMs, 5000);
    assert.deepEqual(s?.outlier, { consecutiveFailures: 3, baseEjectionMs: 2000, maxEjectionMs: 300_000, maxEjectedPercent: 50 });
    assert.deepEqual(s?.health?.expectStatus, [200, 299]);
    assert.deepEqual(parseManifest(web('    http: true\n    sticky: true\n')).services[0]?.sticky, { cookie: 'lanes_sticky', ttlMs: null });
    assert.deepEqual(parseManifest(web('    health: { path: /h, expect_status: 204 }\n')).services[0]?.health?.expectStatus, [204, 204]);
  });

  it('reads a tcp service with a primary check', () => {
    const s = parseManifest(web('    tcp: true\n    instances: 2\n    primary_check: { path: /mirror, interval: 500ms, timeout: 200ms }\n')).services[0];
    assert.equal(s?.tcp, true);
    assert.deepEqual(s?.primaryCheck, { path: '/mirror', intervalMs: 500, timeoutMs: 200 });
  });

  it('refuses edge settings where they cannot apply', () => {
    refuses(web('    sticky: true\n'), 'lanes.yaml: services.web.sticky: only an http service is load balanced by the gateway', 'services.web.sticky');
    refuses(web('    http: true\n    tcp: true\n'), 'lanes.yaml: services.web.tcp: a service is either http or tcp, not both');
    refuses(web('    primary_check: { path: /m }\n'), 'lanes.yaml: services.web.primary_check: only a tcp service can have a primary_check');
    refuses(web('    http: true\n    balance: random\n'), 'lanes.yaml: services.web.balance: Invalid option: expected one of "round_robin"|"least_outstanding"');
    refuses(web('    health: { path: /h, expect_status: 2xx }\n'), 'lanes.yaml: services.web.health.expect_status: must be a status code or a range like 200-399');
    refuses(web('    http: true\n    stickey: true\n'), 'lanes.yaml: services.web: unknown key "stickey" (did you mean "sticky"?)');
  });

  it('splits the command into argv, honouring quotes', () => {
    const m = parseManifest(`name: hello\nservices:\n  web:\n    command: node 'my app.js' --title "a b" x\\ y\n`);
    assert.deepEqual(m.services[0]?.argv, ['node', 'my app.js', '--title', 'a b', 'x y']);
  });

  it('keeps services in manifest order with their settings', () => {
    const m = parseManifest(
      'name: shop\nservices:\n  web:\n    command: node web.js\n    instances: 3\n    http: true\n  api:\n    command: node api.js\n    http: true\n    path: /api/\n    env: { MODE: fast }\n  worker:\n    command: node worker.js\n    instances: 0\n    port: 9000\n',
    );
    assert.deepEqual(
      m.services.map((s) => [s.name, s.instances, s.http, s.path, s.port, s.env]),
      [
        ['web', 3, true, null, null, {}],
        ['api', 1, true, '/api/', null, { MODE: 'fast' }],
        ['worker', 0, false, null, 9000, {}],
      ],
    );
  });

  it('names an unknown key at the top level', () => {
    refuses('name: hello\nservice: {}\nservices:\n  web:\n    command: x\n', 'lanes.yaml: (root): unknown key "service" (did you mean "services"?)', '(root)');
  });

  it('names an unknown key inside a service by its path', () => {
    refuses(web('    comand: node x.js\n'), 'lanes.yaml: services.web: unknown key "comand" (did you mean "command"?)', 'services.web');
  });

  it('names an unknown key inside the health check', () => {
    refuses(web('    health: { path: /h, intervall: 1s }\n'), 'lanes.yaml: services.web.health: unknown key "intervall" (did you mean "interval"?)', 'services.web.health');
  });

  it('reports a wrong type with what was expected and what was found', () => {
    refuses(web('    instances: "2"\n'), 'lanes.yaml: services.web.instances: expected number, got string', 'services.web.instances');
    refuses(web('    http: "yes"\n'), 'lanes.yaml: services.web.http: expected boolean, got string', 'services.web.http');
    refuses('name: 42\nservices:\n  web:\n    command: x\n', 'lanes.yaml: name: expected string, got number', 'name');
    refuses('name: hello\nservices: [a]\n', 'lanes.yaml: services: expected record, got array', 'services');
  });

  it('refuses a service without a command', () => {
    refuses('name: hello\nservices:\n  web:\n    instances: 2\n', 'lanes.yaml: services.web.command: is required', 'services.web.command');
    refuses('name: hello\nservices:\n  web:\n    command: ""\n', 'lanes.yaml: services.web.command: must not be empty', 'services.web.command');
    refuses('name: hello\nservices:\n  web:\n    command: "   "\n', 'lanes.yaml: services.web.command: the command is empty', 'services.web.command');
  });

  it('refuses a command with an unterminated quote', () => {
    refuses(`name: hello\nservices:\n  web:\n    command: node 'a.js\n`, `lanes.yaml: services.web.command: unterminated ' quote in "node 'a.js"`, 'services.web.command');
  });

  it('refuses negative and too many instances', () => {
    refuses(web('    instances: -1\n'), 'lanes.yaml: services.web.instances: must be at least 0', 'services.web.instances');
    refuses(web('    instances: 51\n'), 'lanes.yaml: services.web.instances: must be at most 50', 'services.web.instances');
    assert.throws(() => parseManifest(web('    instances: 1.5\n')), /services\.web\.instances/);
  });

  it('refuses two http services without a routing rule', () => {
    refuses(
      'name: hello\nservices:\n  web:\n    command: a\n    http: true\n  api:\n    command: b\n    http: true\n',
      'lanes.yaml: services: web and api are both http services without a routing rule; give all but one a path (e.g. path: /api/)',
      'services',
    );
  });

  it('refuses two services routed at the same path', () => {
    refuses(
      'name: hello\nservices:\n  web:\n    command: a\n    http: true\n    path: /x/\n  api:\n    command: b\n    http: true\n    path: /x/\n',
      'lanes.yaml: services.api.path: /x/ is already routed to web',
      'services.api.path',
    );
  });

  it('refuses a path on a service that is not http', () => {
    refuses(web('    path: /api/\n'), 'lanes.yaml: services.web.path: only an http service can have a path', 'services.web.path');
  });

  it('refuses two services on the same fixed port', () => {
    refuses('name: hello\nservices:\n  a:\n    command: a\n    port: 8080\n  b:\n    command: b\n    port: 8080\n', 'lanes.yaml: services.b.port: 8080 is already used by a', 'services.b.port');
  });

  it('refuses a reserved environment variable', () => {
    refuses(web('    env: { LANES_TENANT: other }\n'), 'lanes.yaml: services.web.env.LANES_TENANT: is set by the platform and cannot be overridden', 'services.web.env.LANES_TENANT');
    refuses(web('    env: { PORT: "80" }\n'), 'lanes.yaml: services.web.env.PORT: is set by the platform and cannot be overridden', 'services.web.env.PORT');
  });

  it('refuses variables the dynamic loader reads (LD_PRELOAD and the like)', () => {
    refuses(web('    env: { LD_PRELOAD: ./proof.so }\n'), 'lanes.yaml: services.web.env.LD_PRELOAD: is read by the dynamic loader or the C library to load code from a path and is not allowed', 'services.web.env.LD_PRELOAD');
    refuses(web('    env: { LD_LIBRARY_PATH: . }\n'), 'lanes.yaml: services.web.env.LD_LIBRARY_PATH: is read by the dynamic loader or the C library to load code from a path and is not allowed', 'services.web.env.LD_LIBRARY_PATH');
    refuses(web('    env: { ld_audit: x }\n'), 'lanes.yaml: services.web.env.ld_audit: is read by the dynamic loader or the C library to load code from a path and is not allowed', 'services.web.env.ld_audit');
    refuses(web('    env: { GCONV_PATH: . }\n'), 'lanes.yaml: services.web.env.GCONV_PATH: is read by the dynamic loader or the C library to load code from a path and is not allowed', 'services.web.env.GCONV_PATH');
    assert.equal(parseManifest(web('    env: { OLD_PRELOAD: x, NODE_OPTIONS: --max-old-space-size=64 }\n')).services[0]?.env.OLD_PRELOAD, 'x');
  });

  it('refuses an environment variable name that is not a valid identifier', () => {
    assert.throws(() => parseManifest(web('    env: { "A-B": x }\n')), /services\.web\.env\.A-B: must be a valid variable name/);
  });

  it('refuses invalid service and app names', () => {
    refuses('name: hello\nservices:\n  Web:\n    command: x\n', `lanes.yaml: services.Web: "Web" is not a valid service name; use 1-30 characters a-z, 0-9 and '-'`, 'services.Web');
    refuses('name: hello\nservices:\n  ../x:\n    command: x\n', `lanes.yaml: services.../x: "../x" is not a valid service name; use 1-30 characters a-z, 0-9 and '-'`, 'services.../x');
    refuses('name: Hello_App\nservices:\n  web:\n    command: x\n', `lanes.yaml: name: "Hello_App" is not a valid name; use 1-30 characters a-z, 0-9 and '-'`, 'name');
  });

  it('refuses a manifest without services', () => {
    refuses('name: hello\nservices: {}\n', 'lanes.yaml: services: at least one service is needed', 'services');
    refuses('name: hello\n', 'lanes.yaml: services: is required', 'services');
  });

  it('refuses a bad duration, naming the field', () => {
    refuses(web('    stop_grace: 5x\n'), 'lanes.yaml: services.web.stop_grace: "5x" is not a duration; use e.g. 500ms, 1s, 2m', 'services.web.stop_grace');
    refuses(web('    health: { path: /h, interval: soon }\n'), 'lanes.yaml: services.web.health.interval: "soon" is not a duration; use e.g. 500ms, 1s, 2m', 'services.web.health.interval');
  });

  it('refuses a health timeout not shorter than the interval', () => {
    refuses(web('    health: { path: /h, interval: 1s, timeout: 1s }\n'), 'lanes.yaml: services.web.health.timeout: must be shorter than the interval', 'services.web.health.timeout');
  });

  it('refuses a health path that is not a URL path', () => {
    refuses(web('    health: { path: healthz }\n'), 'lanes.yaml: services.web.health.path: must be a URL path starting with /', 'services.web.health.path');
  });

  it('refuses text that is not YAML', () => {
    assert.throws(() => parseManifest('name: [\n'), (err: unknown) => err instanceof InputError && err.message.startsWith('lanes.yaml: not valid YAML: ') && !err.message.includes('\n'));
    assert.throws(() => parseManifest('name: a\nname: b\nservices: {}\n'), /lanes\.yaml: not valid YAML: Map keys must be unique/);
  });

  it('refuses YAML that is not a mapping', () => {
    for (const text of ['- a\n- b\n', 'hello', '', '42', 'null']) {
      refuses(text, 'lanes.yaml: must be a mapping with name and services', 'lanes.yaml');
    }
  });

  it('refuses a manifest larger than the limit', () => {
    refuses(web(`# ${'x'.repeat(MAX_MANIFEST_BYTES)}\n`), `lanes.yaml: is larger than ${MAX_MANIFEST_BYTES} bytes`, 'lanes.yaml');
  });

  it('refuses a YAML alias bomb', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    assert.throws(() => parseManifest(lines.join('\n')), InputError);
  });

  it('validateManifest accepts an already parsed object', () => {
    assert.equal(validateManifest({ name: 'x', services: { a: { command: 'run' } } }).services[0]?.argv[0], 'run');
  });
});

describe('security groups in the manifest', () => {
  it('reads allow_from as the services that may connect', () => {
    const m = parseManifest('name: t\nservices:\n  web: { command: node web.js, http: true }\n  api: { command: node api.js, allow_from: [web] }\n  db: { command: node db.js, port: 5432, allow_from: [api, api] }\n');
    assert.deepEqual(m.services.map((s) => s.allowFrom), [null, ['web'], ['api']]);
  });
  it('refuses an allow_from naming a service the app does not have', () => {
    assert.throws(
      () => parseManifest('name: t\nservices:\n  web: { command: node web.js, http: true }\n  api: { command: node api.js, allow_from: [wbe] }\n'),
      /services\.api\.allow_from\.0: "wbe" is not a service of this app; it has web, api/,
    );
  });
});

describe('rollout deadline', () => {
  it('reads deadline as the time a release has to become healthy', () => {
    assert.equal(parseManifest('name: t\ndeadline: 45s\nservices:\n  web: { command: node w.js }\n').deadlineMs, 45_000);
    assert.throws(() => parseManifest('name: t\ndeadline: soon\nservices:\n  web: { command: node w.js }\n'), /deadline: "soon" is not a duration/);
  });
});

describe('autoscaling in the manifest', () => {
  it('reads scale with its defaults and recommends counts within min..max', async () => {
    const { recommendInstances } = await import('./manifest.js');
    const m = parseManifest('name: t\nservices:\n  web: { command: node w.js, http: true, scale: { min: 1, max: 4, target: { rps_per_instance: 50 } } }\n');
    const a = m.services[0]?.autoscale;
    assert.deepEqual(a, { min: 1, max: 4, targetRps: 50, targetCpuPercent: null, stabilizationMs: 30_000 });
    assert.equal(m.services[0]?.instances, 1, 'starts at min');
    assert.ok(a);
    assert.equal(recommendInstances(a, { rps: 0, cpuPercent: null, current: 1 }), 1);
    assert.equal(recommendInstances(a, { rps: 120, cpuPercent: null, current: 1 }), 3);
    assert.equal(recommendInstances(a, { rps: 10_000, cpuPercent: null, current: 1 }), 4);
    const cpu = parseManifest('name: t\nservices:\n  web: { command: node w.js, scale: { min: 1, max: 5, target: { cpu_percent: 50 } } }\n').services[0]?.autoscale;
    assert.ok(cpu);
    assert.equal(cpu.targetCpuPercent, 50);
    assert.equal(recommendInstances(cpu, { rps: 0, cpuPercent: 90, current: 2 }), 4, '2 instances at 90% against 50% → 4');
    assert.equal(recommendInstances(cpu, { rps: 0, cpuPercent: 10, current: 2 }), 1);
    assert.equal(recommendInstances(cpu, { rps: 0, cpuPercent: null, current: 2 }), 2, 'no CPU figures: stay');
  });
  it('refuses min above max, and instances beside scale', () => {
    assert.throws(() => parseManifest('name: t\nservices:\n  web: { command: node w.js, scale: { min: 5, max: 2, target: { rps_per_instance: 5 } } }\n'), /services\.web\.scale\.min: 5 is larger than max 2/);
    assert.throws(() => parseManifest('name: t\nservices:\n  web: { command: node w.js, instances: 2, scale: { min: 1, max: 2, target: { rps_per_instance: 5 } } }\n'), /services\.web\.instances: a service with scale: starts at scale\.min/);
  });
});

describe('rollout steps in the manifest', () => {
  it('reads max_surge and max_unavailable, and refuses a rollout that could never progress', () => {
    const m = parseManifest('name: t\nservices:\n  web: { command: node w.js, instances: 4, max_surge: 1, max_unavailable: 1 }\n');
    assert.equal(m.services[0]?.maxSurge, 1);
    assert.equal(m.services[0]?.maxUnavailable, 1);
    assert.throws(() => parseManifest('name: t\nservices:\n  web: { command: node w.js, max_surge: 0 }\n'), /services\.web\.max_surge: with max_surge 0, max_unavailable must be at least 1/);
  });
});

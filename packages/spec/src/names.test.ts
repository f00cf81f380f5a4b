import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from './errors.js';
import { checkLane, checkName, checkZoneName, environmentHost, isValidName, parseEnvRef, parseZones } from './names.js';

describe('names', () => {
  it('accepts DNS-label names of 1-30 characters', () => {
    for (const ok of ['a', 'acme', 'web-2', 'a1', 'a'.repeat(30)]) assert.equal(isValidName(ok), true, ok);
  });

  it('refuses names that could reach a path, a host or a namespace badly', () => {
    for (const bad of ['', 'A', '1a', '-a', 'a-', 'a_b', 'a.b', '../x', 'a/b', 'a b', 'a'.repeat(31), 'é', 'a\n']) {
      assert.equal(isValidName(bad), false, JSON.stringify(bad));
    }
  });

  it('checkName returns the name or throws an InputError naming the field', () => {
    assert.equal(checkName('tenant', 'acme'), 'acme');
    assert.throws(
      () => checkName('tenant', '../etc'),
      (err: unknown) => err instanceof InputError && err.field === 'tenant' && err.message === `tenant: "../etc" is not a valid name; use 1-30 characters a-z, 0-9 and '-', starting with a letter and not ending with '-'`,
    );
    assert.throws(() => checkName('tenant', 42), /tenant: 42 is not a valid name/);
  });
});

describe('zones', () => {
  it('checkZoneName accepts 1-8 lower-case letters and digits', () => {
    assert.equal(checkZoneName('zone', 'a'), 'a');
    assert.equal(checkZoneName('zone', 'eu1b'), 'eu1b');
    for (const bad of ['', '1a', 'A', 'a-b', 'abcdefghi', null]) assert.throws(() => checkZoneName('zone', bad), InputError, JSON.stringify(bad));
  });

  it('parseZones splits and trims a list', () => {
    assert.deepEqual(parseZones('a,b, c'), ['a', 'b', 'c']);
    assert.deepEqual(parseZones('a,,b,'), ['a', 'b']);
  });

  it('parseZones refuses an empty list, bad names and duplicates', () => {
    assert.throws(() => parseZones(' , '), { message: 'zones: at least one zone is needed, e.g. --zones a,b,c' });
    assert.throws(() => parseZones('a,B'), (err: unknown) => err instanceof InputError && err.field === 'zones[1]');
    assert.throws(() => parseZones('a,b,a'), { message: 'zones: "a,b,a" names a zone twice' });
  });
});

describe('environment references', () => {
  it('parses TENANT/ENV', () => {
    assert.deepEqual(parseEnvRef('acme/prod'), { tenant: 'acme', environment: 'prod' });
  });

  it('refuses other shapes and bad names', () => {
    assert.throws(() => parseEnvRef('acme'), { message: 'environment: "acme" should be TENANT/ENV, e.g. acme/prod' });
    assert.throws(() => parseEnvRef('acme/prod/x'), /should be TENANT\/ENV/);
    assert.throws(() => parseEnvRef('Acme/prod'), (err: unknown) => err instanceof InputError && err.field === 'tenant');
    assert.throws(() => parseEnvRef('acme/..'), (err: unknown) => err instanceof InputError && err.field === 'environment');
  });

  it('builds the host an environment is served at', () => {
    assert.equal(environmentHost('prod', 'acme', 'lanes.test'), 'prod.acme.lanes.test');
  });
});

describe('lanes', () => {
  it('accepts single and double only', () => {
    assert.equal(checkLane('single'), 'single');
    assert.equal(checkLane('double'), 'double');
    assert.throws(() => checkLane('triple'), { message: 'lane: "triple" is not a lane; use single or double' });
  });
});

/**
 * The one module that loads @peculiar/x509 (certificate building and extension parsing on
 * top of WebCrypto). It needs a Reflect metadata polyfill for its dependency injection
 * (tsyringe), which must be in place before the library is evaluated, hence the import
 * order here; every other module of this package imports x509 from this file.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto, not a polyfill: the keys are generated and used by OpenSSL.
x509.cryptoProvider.set(webcrypto);

export { x509 };
export const subtle = webcrypto.subtle;

/**
 * @lanes/pki — the platform's certificates: its own CA, server certificates issued for
 * environment host names, the renewal rule, and the validation of certificates users
 * bring. Pure functions over PEM strings (no files, no network); the control plane stores
 * the results and hands them to the gateway.
 */
export {
  createCa,
  checkCa,
  issueCertificate,
  checkDnsNames,
  CA_LIFETIME_MS,
  DEFAULT_CERT_LIFETIME_MS,
  MIN_CERT_LIFETIME_MS,
  type KeyPairPem,
  type IssuedCertificate,
} from './issue.js';
export {
  validateCustomCertificate,
  describeCertificate,
  renewalDue,
  nameCovers,
  splitCertificates,
  isoSeconds,
  type CertificateInfo,
  type CustomCertificateInput,
  type ValidatedCertificate,
} from './validate.js';

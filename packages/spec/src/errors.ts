/**
 * The closed set of domain errors. Every component throws these; the control plane maps
 * them to HTTP (problem+json) in exactly one place, and the CLI prints their message.
 */

export type ErrorCode =
  | 'LANES_ERR_INPUT'
  | 'LANES_ERR_NOT_FOUND'
  | 'LANES_ERR_CONFLICT'
  | 'LANES_ERR_UNAUTHENTICATED'
  | 'LANES_ERR_NOT_ALLOWED'
  | 'LANES_ERR_UNAVAILABLE'
  | 'LANES_ERR_TOO_LARGE';

export abstract class LanesError extends Error {
  abstract readonly code: ErrorCode;
}

/** The caller sent something invalid. `field` is the path of the offending value. */
export class InputError extends LanesError {
  readonly code = 'LANES_ERR_INPUT';
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = 'InputError';
    this.field = field;
  }
}

export class NotFoundError extends LanesError {
  readonly code = 'LANES_ERR_NOT_FOUND';
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends LanesError {
  readonly code = 'LANES_ERR_CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export class UnauthenticatedError extends LanesError {
  readonly code = 'LANES_ERR_UNAUTHENTICATED';
  constructor(message: string) {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

export class NotAllowedError extends LanesError {
  readonly code = 'LANES_ERR_NOT_ALLOWED';
  constructor(message: string) {
    super(message);
    this.name = 'NotAllowedError';
  }
}

export class UnavailableError extends LanesError {
  readonly code = 'LANES_ERR_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'UnavailableError';
  }
}

export class TooLargeError extends LanesError {
  readonly code = 'LANES_ERR_TOO_LARGE';
  constructor(message: string) {
    super(message);
    this.name = 'TooLargeError';
  }
}

export function isLanesError(err: unknown): err is LanesError {
  return err instanceof LanesError;
}

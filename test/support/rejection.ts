import type { AppError } from '../../src/errors';

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejectionOf<E = AppError>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (err) {
    return err as E;
  }
  throw new Error('expected a rejection, got a value');
}

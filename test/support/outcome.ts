/** How a promise settled, as data: tests assert on refusals without try/catch around each call. */
export async function outcome(promise: Promise<unknown>): Promise<{ ok: true } | { ok: false; error: unknown }> {
  try {
    await promise;
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  }
}

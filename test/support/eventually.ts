/**
 * Waits for `check` to hold, for what reaches a server asynchronously (a change notice, a
 * delivery): asks every 20 ms for up to `withinMs`, then answers with one last check.
 */
export async function eventually(check: () => Promise<boolean>, withinMs = 2_000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

/** Like {@link eventually}, for a test that must go on only once `check` holds: throws when it does not within `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  if (!(await eventually(check, timeoutMs))) throw new Error(`not true within ${timeoutMs} ms`);
}

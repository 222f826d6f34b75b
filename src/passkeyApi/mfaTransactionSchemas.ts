import { z } from 'zod';

/**
 * A user id the app names in a request (Hanko: `required`): any non-empty string; one the
 * tenant does not know is a 404, as in Hanko. The cap only keeps junk out of the lookup.
 */
const namedUserId = z
  .string({ message: 'must be a string' })
  .min(1, { message: 'is required' })
  .max(1024, { message: 'must be at most 1024 characters' });

/** `POST /mfa/login/initialize` (Hanko: InitMfaLoginDto): the user is required. */
export const mfaLoginInitializeSchema = z.object({ user_id: namedUserId });

/**
 * How deep `transaction_data` may nest: Go's JSON decoder, which reads Hanko's requests,
 * refuses a body nested more than 10,000 levels deep (encoding/json's maxNestingDepth), and
 * the request object around the data is one of them. Deeper data is refused as Hanko does.
 */
export const MAX_TRANSACTION_DATA_DEPTH = 9999;

/** How many arrays and objects deep a parsed JSON value nests (0 for a scalar), without recursion. */
function nestingDepth(value: unknown): number {
  let deepest = 0;
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (pending.length > 0) {
    const { value: current, depth } = pending.pop()!;
    if (current === null || typeof current !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const inner of Object.values(current)) pending.push({ value: inner, depth: depth + 1 });
  }
  return deepest;
}

/**
 * Hanko's `required` on `transaction_data` (go-playground/validator on an `interface{}`):
 * null, "", 0 and false are missing; any object or array, even empty, is data.
 */
const transactionData = z
  .unknown()
  .refine((v) => v !== undefined && v !== null && v !== '' && v !== 0 && v !== false, {
    message: 'is required',
  })
  .refine((v) => nestingDepth(v) <= MAX_TRANSACTION_DATA_DEPTH, {
    message: `must not nest arrays and objects more than ${MAX_TRANSACTION_DATA_DEPTH} levels deep`,
  });

/** `POST /transaction/initialize` (Hanko: InitTransactionDto). */
export const transactionInitializeSchema = z.object({
  user_id: namedUserId,
  transaction_id: z
    .string({ message: 'must be a string' })
    .min(1, { message: 'is required' })
    // Hanko's max=128 counts characters (runes), not UTF-16 units.
    .refine((v) => [...v].length <= 128, { message: 'must be at most 128 characters' }),
  transaction_data: transactionData,
});

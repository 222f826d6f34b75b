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
 * Hanko's `required` on `transaction_data` (go-playground/validator on an `interface{}`):
 * null, "", 0 and false are missing; any object or array, even empty, is data.
 */
const transactionData = z
  .unknown()
  .refine((v) => v !== undefined && v !== null && v !== '' && v !== 0 && v !== false, {
    message: 'is required',
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

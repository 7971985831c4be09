/**
 * Questions on a terminal: typing a word (the database name) to go ahead, or
 * yes/no. End of input or anything else declines.
 */
import { createInterface } from 'node:readline/promises';

export async function confirmByTyping(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  question: string,
  expected: string,
): Promise<boolean> {
  const readline = createInterface({ input, output, terminal: false });
  const closed = new Promise<string>((resolve) => readline.once('close', () => resolve('')));
  try {
    const answer = await Promise.race([readline.question(question), closed]);
    return answer.trim() === expected;
  } finally {
    readline.close();
  }
}

/** A yes/no question on a terminal; only `y` or `yes` says yes, end of input says no. */
export async function askYesNo(input: NodeJS.ReadableStream, output: NodeJS.WritableStream, question: string): Promise<boolean> {
  const readline = createInterface({ input, output, terminal: false });
  const closed = new Promise<string>((resolve) => readline.once('close', () => resolve('')));
  try {
    const answer = await Promise.race([readline.question(question), closed]);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    readline.close();
  }
}

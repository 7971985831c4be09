// Stand-in for Node's `assert` inside the pgdb bundle only, for yargs
// (cli/build/bundle.ts substitutes it for yargs' `import ... from 'assert'`).
//
// yargs uses two functions of it, for checks of its own invariants. Loading
// Node's assert module (its error class, diffing and inspection helpers)
// costs a few milliseconds at every start of pgdb; these two do not need it.
// They throw what Node's would: an AssertionError (code ERR_ASSERTION) with
// the message given, or one naming the values.

class AssertionError extends Error {
  constructor(message, actual, expected, operator) {
    super(message);
    this.name = 'AssertionError';
    this.code = 'ERR_ASSERTION';
    this.actual = actual;
    this.expected = expected;
    this.operator = operator;
  }
}

function fail(message, actual, expected, operator, fallback) {
  if (message instanceof Error) throw message;
  throw new AssertionError(message ?? fallback, actual, expected, operator);
}

export function strictEqual(actual, expected, message) {
  if (!Object.is(actual, expected)) {
    fail(message, actual, expected, 'strictEqual', `Expected values to be strictly equal:\n\n${String(actual)} !== ${String(expected)}\n`);
  }
}

export function notStrictEqual(actual, expected, message) {
  if (Object.is(actual, expected)) {
    fail(message, actual, expected, 'notStrictEqual', `Expected "actual" to be strictly unequal to: ${String(expected)}`);
  }
}

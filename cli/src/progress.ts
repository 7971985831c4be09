/**
 * A one-line spinner on stderr while a command waits. It draws only on a
 * terminal, so pipes, files and CI logs never see control characters.
 */

interface Progress {
  stop(): void;
}

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): boolean;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const INTERVAL_MS = 100;
const CLEAR_LINE = '\r\x1b[2K';

function startProgress(stream: ProgressStream, label: string): Progress {
  if (!stream.isTTY) {
    return { stop: () => undefined };
  }
  const started = Date.now();
  let frame = 0;
  const draw = () => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    stream.write(`${CLEAR_LINE}${FRAMES[frame % FRAMES.length]} ${label} (${seconds}s)`);
    frame += 1;
  };
  draw();
  const timer = setInterval(draw, INTERVAL_MS);
  return {
    stop: () => {
      clearInterval(timer);
      stream.write(CLEAR_LINE);
    },
  };
}

/** Shows the spinner until `work` settles. */
export async function whileWaiting<T>(stream: ProgressStream, label: string, work: Promise<T>): Promise<T> {
  const progress = startProgress(stream, label);
  try {
    return await work;
  } finally {
    progress.stop();
  }
}

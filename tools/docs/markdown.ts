/** Small pieces of Markdown as GitHub renders it. */

/** Text for a table cell: `|` escaped, and `<` outside code spans, which GitHub would take for the start of a tag; line breaks as `<br>`. */
export function cell(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, '&lt;')))
    .join('')
    .replace(/\|/g, '\\|')
    .replace(/\s*\n+\s*/g, '<br>');
}

/** A code span holding `text` as is, whatever backticks it has. */
export function code(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/**
 * The anchor GitHub gives a heading: its text (code spans and links as
 * their text) in lower case, without punctuation other than `-` and `_`,
 * spaces as dashes. A repeated heading gets `-1`, `-2`, ... (headingAnchors).
 */
export function githubSlug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The parts of a Markdown text outside fenced code blocks, line by line (the others empty, so that line numbers hold). */
export function outsideFences(text: string): string[] {
  let fence: string | undefined;
  return text.split('\n').map((line) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker) {
      fence = marker;
      return '';
    }
    if (fence !== undefined) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) fence = undefined;
      return '';
    }
    return line;
  });
}

/** Every heading's anchor in a Markdown text, in GitHub's form. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const count = new Map<string, number>();
  for (const line of outsideFences(text)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (!heading) continue;
    const slug = githubSlug(heading[1]);
    const n = count.get(slug) ?? 0;
    count.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

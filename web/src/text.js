// Text helpers that must behave exactly as Python's str methods do, so that
// the browser and the server build the same values from the same input.

// The code points for which Python's str.isspace() is true (Unicode 14.0):
// what str.strip() removes. String.prototype.trim differs (it also strips
// U+FEFF, and keeps U+001C..U+001F and U+0085).
export const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
  0x205f, 0x3000,
]);

/** `text` without leading and trailing whitespace, as Python's `text.strip()`. */
export function pyStrip(text) {
  const s = String(text);
  let start = 0;
  let end = s.length;
  // Every whitespace code point is in the BMP, so UTF-16 units can be tested directly.
  while (start < end && PY_WHITESPACE.has(s.charCodeAt(start))) start++;
  while (end > start && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, as in any browser form). */
export function utf8(text) {
  return new TextEncoder().encode(text);
}

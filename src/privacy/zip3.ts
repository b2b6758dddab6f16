/**
 * ZIP codes under HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(B)): a ZIP code may be kept only as
 * its first three digits, and only when the geographic unit formed by all ZIP codes with those
 * three digits holds more than 20,000 people; otherwise it becomes `000`.
 */

/**
 * The three-digit ZIP prefixes whose areas (three-digit ZIP Code Tabulation Areas) held 20,000
 * people or fewer in the 2000 Census, as listed by HHS in "Guidance Regarding Methods for
 * De-identification of Protected Health Information in Accordance with the HIPAA Privacy Rule"
 * (Office for Civil Rights, November 2012), under "When can ZIP codes be included in
 * de-identified information?" (after the preamble of the final rule, 67 FR 53182, 53233-53234,
 * August 14, 2002): records with these prefixes must carry `000`. HHS notes that more current
 * census data, once published, supersede this list.
 */
export const RESTRICTED_ZIP3: ReadonlySet<string> = new Set([
  '036', '059', '063', '102', '203', '556', '692', '790', '821', '823', '830', '831', '878', '879', '884', '890', '893',
]);

/**
 * A US ZIP code reduced by the Safe Harbor rule: its first three digits, or `000` for a restricted
 * area (`RESTRICTED_ZIP3`). Accepts `01940`, `01940-1234`, `019401234` and, since spreadsheets
 * drop leading zeros, a four-digit `1940` (read as `01940`). Anything else (letters, other
 * lengths: not a US ZIP code) gives `undefined`, and callers drop the value rather than guess.
 */
export function zip3(value: string): string | undefined {
  const s = value.trim();
  let digits = 0;
  let dash = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 45 && dash < 0 && i === 5) dash = i;
    else return undefined;
  }
  // 5 digits, ZIP+4 written 01940-1234 or 019401234, or a ZIP that lost its leading zero.
  const ok = dash >= 0 ? digits === 9 && s.length === 10 : digits === 5 || digits === 9 || digits === 4;
  if (!ok) return undefined;
  const head = digits === 4 && dash < 0 ? `0${s.slice(0, 2)}` : s.slice(0, 3);
  return RESTRICTED_ZIP3.has(head) ? '000' : head;
}

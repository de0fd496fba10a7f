/**
 * The HTML page the edge serves itself (the landing page, the operator's page):
 * one shell — doctype, charset, viewport, noindex, title, one inline
 * stylesheet — with the page's own rules and body. hono/html escapes every
 * value interpolated; nothing is loaded from elsewhere.
 */
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** Rules every page shares: its warning box. */
const SHARED_STYLE = '.warn { background: #fff3cd; padding: .5rem 1rem; border-radius: 4px; }';

/** The whole page as text; `style` is the page's own CSS, `body` what goes inside <body>. */
export async function renderPage(o: { title: string; style: string; body: Html }): Promise<string> {
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${o.title}</title>
<style>
${raw(o.style.trim())}
${raw(SHARED_STYLE)}
</style>
</head>
<body>
${o.body}
</body>
</html>
`;
  return (await page).toString();
}

package snippet

import (
	"html"
	"net/url"
	"strings"
)

// Stub is the queue-before-load line every page needs before the script
// tag: calls made before t.js has loaded are kept in tally.q and run, in
// order, when it has.
const Stub = `window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}`

// Tags returns the HTML a site pastes into every page's <head> to load its
// tracker from origin (tally's public base URL as the site sees it, ideally
// the site's own domain behind a reverse proxy: a cookie set from another
// site's IP range is capped at 7 days by Safari).
func Tags(site, origin string) string {
	src := strings.TrimRight(origin, "/") + "/t.js?site=" + url.QueryEscape(site)
	return "<script>" + Stub + "</script>\n" +
		`<script async src="` + html.EscapeString(src) + `" data-site="` + html.EscapeString(site) + `"></script>` + "\n"
}

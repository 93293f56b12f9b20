package enrich

import "strings"

// splitSite cuts a lower-case host name into the part left of its
// registrable domain (sub), the label that names the owner (brand) and the
// public suffix: "news.bbc.co.uk" → "news", "bbc", "co.uk".
//
// Without the Public Suffix List this is a heuristic: the suffix is one label,
// or two when the last is a two-letter country code and the one before it is
// one of the generic second levels countries use (co.uk, com.au, co.jp,
// ne.jp, org.br…). It errs on hosted platforms whose users get subdomains of
// one registrable domain (alice.github.io and bob.github.io look like one
// site), which only matters for the same-site rule.
func splitSite(host string) (sub, brand, suffix string) {
	if host == "" {
		return "", "", ""
	}
	if isIPLiteral(host) {
		return "", host, ""
	}
	last := strings.LastIndexByte(host, '.')
	if last < 0 {
		return "", host, ""
	}
	suffixStart := last + 1
	if len(host)-suffixStart == 2 {
		if prev := strings.LastIndexByte(host[:last], '.'); prev >= 0 && isGenericSLD(host[prev+1:last]) {
			suffixStart = prev + 1
		}
	}
	suffix = host[suffixStart:]
	rest := strings.TrimSuffix(host[:suffixStart], ".")
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		return rest[:i], rest[i+1:], suffix
	}
	return "", rest, suffix
}

// isIPLiteral reports whether host is an address rather than a name: IPv6
// (it has a colon) or IPv4 (its last label is numeric; no top-level domain
// is). Cheaper than netip.ParseAddr, whose error allocates, on the common
// path where host is a name.
func isIPLiteral(host string) bool {
	if strings.IndexByte(host, ':') >= 0 {
		return true
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func isGenericSLD(s string) bool {
	switch s {
	case "co", "com", "net", "org", "gov", "edu", "ac", "ne", "or", "go", "gob", "mil", "nic", "ltd", "plc", "sch", "gen", "biz", "info":
		return true
	}
	return false
}

// siteOf returns a host's registrable domain ("shop.example.co.uk" →
// "example.co.uk"); "www." and other subdomains do not matter to it.
func siteOf(host string) string {
	_, brand, suffix := splitSite(host)
	if suffix == "" {
		return brand
	}
	// Slicing host keeps this allocation-free.
	return host[len(host)-len(brand)-1-len(suffix):]
}

// hostKind classifies a referrer host: TouchOrganicSearch, TouchSocial,
// TouchEmail, or "" for an ordinary site.
func hostKind(host string) string {
	sub, brand, suffix := splitSite(host)
	first := sub
	if i := strings.IndexByte(sub, '.'); i >= 0 {
		first = sub[:i]
	}
	// Webmail first: mail.google.com is not a search engine.
	switch first {
	case "mail", "webmail", "outlook", "email":
		return TouchEmail
	}
	switch brand {
	case "google":
		if sub == "" || sub == "www" || sub == "m" {
			return TouchOrganicSearch
		}
		return ""
	case "bing", "duckduckgo", "ecosia", "qwant", "startpage", "kagi", "sogou", "yandex", "ya", "baidu", "seznam":
		return TouchOrganicSearch
	case "yahoo", "aol", "naver", "ask":
		if sub == "" || sub == "www" || strings.Contains(sub, "search") {
			return TouchOrganicSearch
		}
		return ""
	case "brave":
		if first == "search" {
			return TouchOrganicSearch
		}
		return ""
	case "facebook", "fb", "messenger", "instagram", "threads", "twitter", "linkedin", "lnkd",
		"pinterest", "reddit", "youtube", "youtu", "tiktok", "snapchat", "tumblr", "quora", "vk",
		"weibo", "telegram", "whatsapp", "discord", "twitch", "bsky", "mastodon", "xing", "line":
		return TouchSocial
	case "x":
		if suffix == "com" {
			return TouchSocial
		}
	case "t":
		if suffix == "co" || suffix == "me" { // t.co (X's link shortener), t.me (Telegram)
			return TouchSocial
		}
	case "ycombinator":
		if sub == "news" {
			return TouchSocial
		}
	}
	return ""
}

// androidAppKind classifies the package name in an android-app:// referrer,
// which Android sends when a link is opened from an app.
func androidAppKind(pkg string) string {
	switch pkg {
	case "com.google.android.gm", "com.microsoft.office.outlook", "com.yahoo.mobile.client.android.mail",
		"ch.protonmail.android", "com.samsung.android.email.provider":
		return TouchEmail
	case "com.google.android.googlequicksearchbox", "com.google.android.apps.searchlite",
		"com.duckduckgo.mobile.android", "com.microsoft.bing":
		return TouchOrganicSearch
	case "com.facebook.katana", "com.facebook.lite", "com.facebook.orca", "com.instagram.android",
		"com.instagram.barcelona", "com.twitter.android", "com.linkedin.android", "com.pinterest",
		"com.reddit.frontpage", "com.zhiliaoapp.musically", "com.ss.android.ugc.trill",
		"com.snapchat.android", "org.telegram.messenger", "com.whatsapp", "com.discord",
		"com.google.android.youtube":
		return TouchSocial
	}
	return ""
}

// Bare utm_source names of search engines and social networks, for links
// tagged utm_source=google rather than with a host.
var searchSourceNames = [...]string{
	"google", "googleads", "google_ads", "google-ads", "adwords", "bing", "bingads", "microsoft",
	"microsoftads", "microsoft_ads", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "qwant",
	"naver", "seznam", "brave",
}

var socialSourceNames = [...]string{
	"facebook", "fb", "instagram", "ig", "meta", "threads", "messenger", "whatsapp", "linkedin",
	"twitter", "x", "tiktok", "pinterest", "reddit", "snapchat", "youtube", "telegram", "bluesky",
	"mastodon", "discord", "tumblr", "quora", "vk",
}

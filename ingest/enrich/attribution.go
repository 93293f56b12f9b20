package enrich

import (
	"net/url"
	"strings"
)

// Touchpoint sources: the values of HubSpot's hs_touchpoint_source that web
// traffic can have.
const (
	TouchDirect         = "DIRECT_TRAFFIC"
	TouchOrganicSearch  = "ORGANIC_SEARCH"
	TouchPaidSearch     = "PAID_SEARCH"
	TouchSocial         = "SOCIAL_MEDIA"
	TouchPaidSocial     = "PAID_SOCIAL"
	TouchEmail          = "EMAIL_MARKETING"
	TouchReferral       = "REFERRALS"
	TouchOtherCampaigns = "OTHER_CAMPAIGNS"
)

// attribution is what a page URL and its referrer say about how the visitor
// arrived.
type attribution struct {
	Path         string
	UTMSource    string
	UTMMedium    string
	UTMCampaign  string
	UTMTerm      string
	UTMContent   string
	ClickIDParam string // the first click-id parameter in the URL
	ClickID      string

	pageHost  string
	refScheme string
	refHost   string
	signals   clickKind // every kind of click marker present (a bit set)
}

// clickKind says what a click-id parameter proves about the click.
type clickKind uint8

const (
	clickPaidSearch clickKind = 1 << iota // only ads on search engines add it
	clickPaidSocial                       // only ads on social networks add it
	clickDisplay                          // display and video ads
	clickSocial                           // added to organic and paid links alike
	clickEmail                            // email tools' link tracking
)

// clickParams are the query parameters that identify a click. Those with
// store set are click ids, kept in ClickIDParam/ClickID; the others only
// inform the touchpoint.
var clickParams = [...]struct {
	name  string
	kind  clickKind
	store bool
}{
	{"gclid", clickPaidSearch, true},   // Google Ads
	{"gbraid", clickPaidSearch, true},  // Google Ads, iOS app-to-web
	{"wbraid", clickPaidSearch, true},  // Google Ads, iOS web-to-app
	{"msclkid", clickPaidSearch, true}, // Microsoft Advertising
	{"yclid", clickPaidSearch, true},   // Yandex Direct
	{"gad_source", clickPaidSearch, false},
	{"dclid", clickDisplay, true},        // Google Display & Video 360, Campaign Manager
	{"fbclid", clickSocial, true},        // Facebook and Instagram, organic links too
	{"ttclid", clickPaidSocial, true},    // TikTok Ads
	{"li_fat_id", clickPaidSocial, true}, // LinkedIn Ads
	{"twclid", clickPaidSocial, true},    // X (Twitter) Ads
	{"epik", clickPaidSocial, true},      // Pinterest Ads
	{"rdt_cid", clickPaidSocial, true},   // Reddit Ads
	{"sccid", clickPaidSocial, true},     // Snapchat Ads (sent as ScCid)
	{"_hsenc", clickEmail, false},        // HubSpot email
	{"_hsmi", clickEmail, false},         // HubSpot email
	{"mc_cid", clickEmail, false},        // Mailchimp campaign
}

// parseAttribution reads the page URL and referrer. It never fails: what
// cannot be read is left empty.
func parseAttribution(pageURL, referrer string) attribution {
	var a attribution
	var rawPath, query string
	_, a.pageHost, rawPath, query = splitURL(pageURL)
	a.Path = rawPath
	if strings.IndexByte(rawPath, '%') >= 0 {
		if p, err := url.PathUnescape(rawPath); err == nil {
			a.Path = p
		}
	}
	if a.Path == "" && a.pageHost != "" {
		a.Path = "/"
	}
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		key, val, _ := strings.Cut(pair, "=")
		if key == "" {
			continue
		}
		switch {
		case len(key) > 4 && strings.EqualFold(key[:4], "utm_"):
			a.setUTM(key[4:], val)
		default:
			a.setClick(key, val)
		}
	}
	a.refScheme, a.refHost, _, _ = splitURL(referrer)
	return a
}

func (a *attribution) setUTM(name, raw string) {
	var dst *string
	switch {
	case strings.EqualFold(name, "source"):
		dst = &a.UTMSource
	case strings.EqualFold(name, "medium"):
		dst = &a.UTMMedium
	case strings.EqualFold(name, "campaign"):
		dst = &a.UTMCampaign
	case strings.EqualFold(name, "term"):
		dst = &a.UTMTerm
	case strings.EqualFold(name, "content"):
		dst = &a.UTMContent
	default:
		return
	}
	if *dst == "" {
		*dst = queryValue(raw)
	}
}

func (a *attribution) setClick(key, raw string) {
	for _, p := range clickParams {
		if !strings.EqualFold(key, p.name) {
			continue
		}
		v := queryValue(raw)
		if v == "" {
			return
		}
		a.signals |= p.kind
		if p.store && a.ClickIDParam == "" {
			a.ClickIDParam, a.ClickID = p.name, v
		}
		return
	}
}

// queryValue decodes one query value; a malformed escape keeps the raw text
// rather than losing the value.
func queryValue(raw string) string {
	v := raw
	if strings.IndexByte(raw, '%') >= 0 || strings.IndexByte(raw, '+') >= 0 {
		if d, err := url.QueryUnescape(raw); err == nil {
			v = d
		}
	}
	return strings.TrimSpace(v)
}

// splitURL cuts a URL into scheme, host (lower case, no port, no trailing
// dot), path and query, without allocating for ordinary input. It accepts
// what browsers and API callers send: absolute URLs, scheme-relative
// "//host/path", bare "/path?query" and schemeless "host/path".
func splitURL(raw string) (scheme, host, path, query string) {
	s := strings.TrimSpace(raw)
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, query = s[:i], s[i+1:]
	}
	var authority string
	switch {
	case strings.HasPrefix(s, "//"):
		authority, path = cutAuthority(s[2:])
	case strings.HasPrefix(s, "/"):
		path = s
	default:
		if i := strings.Index(s, "://"); i > 0 && validScheme(s[:i]) {
			scheme = strings.ToLower(s[:i])
			authority, path = cutAuthority(s[i+3:])
		} else if i := strings.IndexByte(s, ':'); i > 0 && validScheme(s[:i]) && !strings.Contains(s[:i], ".") && !looksLikePort(s[i+1:]) {
			// "about:blank", "mailto:…": a scheme with no host.
			scheme = strings.ToLower(s[:i])
			return scheme, "", "", query
		} else {
			authority, path = cutAuthority(s)
		}
	}
	return scheme, hostOf(authority), path, query
}

func cutAuthority(s string) (authority, path string) {
	if i := strings.IndexAny(s, "/\\"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// looksLikePort reports whether s starts with a port number: "8080/x" in
// "example.com:8080/x", which is a schemeless host, not a scheme.
func looksLikePort(s string) bool {
	n := 0
	for ; n < len(s) && s[n] != '/'; n++ {
		if s[n] < '0' || s[n] > '9' {
			return false
		}
	}
	return n > 0
}

func validScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// hostOf strips user info and port from an authority and lower-cases it.
func hostOf(authority string) string {
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if strings.HasPrefix(authority, "[") {
		if i := strings.IndexByte(authority, ']'); i >= 0 {
			return strings.ToLower(authority[1:i])
		}
		return ""
	}
	if i := strings.IndexByte(authority, ':'); i >= 0 {
		authority = authority[:i]
	}
	authority = strings.TrimSuffix(authority, ".")
	return strings.ToLower(authority)
}

// touchpoint classifies how the visitor arrived. The rules, first match wins:
//
//  1. A paid-search click id (gclid, gbraid, wbraid, msclkid, yclid, or
//     gad_source) → PAID_SEARCH, whatever the referrer and UTM say: only an
//     ad click gets one, and ad platforms add it themselves while UTM tags
//     are typed by people.
//  2. A paid-social click id (ttclid, li_fat_id, twclid, epik, rdt_cid,
//     ScCid) → PAID_SOCIAL, for the same reason.
//  3. An email tool's tracking parameter (HubSpot's _hsenc/_hsmi,
//     Mailchimp's mc_cid) → EMAIL_MARKETING.
//  4. UTM tags (any of utm_source, utm_medium, utm_campaign), by medium and
//     source, compared case-insensitively (GA4's default channel rules,
//     folded onto HubSpot's categories):
//     a. medium or source says email ("email", "e-mail", "e_mail",
//     "e mail", "mail", "newsletter") → EMAIL_MARKETING;
//     b. a paid medium (contains "cp" as in cpc/cpm/cpv, or is "ppc",
//     "retargeting", "display", "banner", "ad", "ads", "sem", or starts
//     with "paid")
//     → PAID_SEARCH when the source or the referrer is a search engine or
//     the medium mentions search; PAID_SOCIAL when either is a social
//     network or the medium mentions social; else OTHER_CAMPAIGNS (display,
//     affiliates' cpa…);
//     c. a social medium ("social", "social-network", "social-media", "sm",
//     "organic_social"…) or a social source → SOCIAL_MEDIA;
//     d. medium "organic" or a search-engine source → ORGANIC_SEARCH;
//     e. medium "referral" → REFERRALS;
//     f. anything else tagged → OTHER_CAMPAIGNS.
//  5. dclid (display ads) → OTHER_CAMPAIGNS; fbclid → SOCIAL_MEDIA, because
//     Facebook adds it to every outbound link, organic posts included, so
//     alone it does not prove an ad (an ad tagged utm_medium=paid is caught
//     by 4b).
//  6. The referrer:
//     a. none, or not a web page (about:blank, a file) → DIRECT_TRAFFIC;
//     b. same site as the page (same registrable domain:
//     blog.example.com → shop.example.com) → DIRECT_TRAFFIC: navigation
//     inside the site says nothing about where the visit came from;
//     c. an Android app (android-app://package) → by the app: Gmail and
//     Outlook are EMAIL_MARKETING, the Google app ORGANIC_SEARCH, the
//     social apps SOCIAL_MEDIA, others REFERRALS;
//     d. a webmail host (mail.*, webmail.*, outlook.*, email.*: Gmail and
//     Outlook on the web, mail tools' click-tracking hosts) →
//     EMAIL_MARKETING;
//     e. a search engine's results (google.<tld> with www. or m., bing,
//     yahoo search, duckduckgo, baidu, yandex, ecosia, qwant, startpage,
//     brave search, kagi, naver, seznam, sogou, ask, aol search) →
//     ORGANIC_SEARCH; other Google hosts (docs, drive…) are referrals;
//     f. a social network or messenger (facebook, instagram, threads, x/
//     twitter, t.co, linkedin, pinterest, reddit, youtube, tiktok,
//     snapchat, tumblr, quora, vk, weibo, telegram, whatsapp, discord,
//     twitch, bluesky, mastodon, Hacker News…) → SOCIAL_MEDIA;
//     g. any other site → REFERRALS.
func (a *attribution) touchpoint() string {
	switch {
	case a.signals&clickPaidSearch != 0:
		return TouchPaidSearch
	case a.signals&clickPaidSocial != 0:
		return TouchPaidSocial
	case a.signals&clickEmail != 0:
		return TouchEmail
	}
	if a.UTMSource != "" || a.UTMMedium != "" || a.UTMCampaign != "" {
		return a.utmTouchpoint()
	}
	switch {
	case a.signals&clickDisplay != 0:
		return TouchOtherCampaigns
	case a.signals&clickSocial != 0:
		return TouchSocial
	}
	return a.referrerTouchpoint()
}

func (a *attribution) utmTouchpoint() string {
	medium, source := strings.TrimSpace(a.UTMMedium), strings.TrimSpace(a.UTMSource)
	if isEmailWord(medium) || isEmailWord(source) {
		return TouchEmail
	}
	srcKind := sourceKind(source)
	if isPaidMedium(medium) {
		refKind := a.refKind()
		switch {
		case srcKind == TouchOrganicSearch || indexFold(medium, "search") >= 0 || strings.EqualFold(medium, "sem"):
			return TouchPaidSearch
		case srcKind == TouchSocial || indexFold(medium, "social") >= 0:
			return TouchPaidSocial
		case srcKind == "" && refKind == TouchOrganicSearch:
			return TouchPaidSearch
		case srcKind == "" && refKind == TouchSocial:
			return TouchPaidSocial
		}
		return TouchOtherCampaigns
	}
	switch {
	case isSocialMedium(medium) || srcKind == TouchSocial:
		return TouchSocial
	case strings.EqualFold(medium, "organic") || srcKind == TouchOrganicSearch:
		return TouchOrganicSearch
	case strings.EqualFold(medium, "referral"):
		return TouchReferral
	}
	return TouchOtherCampaigns
}

// refKind classifies the referrer host alone (search, social, email or "").
func (a *attribution) refKind() string {
	if a.refHost == "" || a.sameSite() {
		return ""
	}
	if a.refScheme == "android-app" {
		return androidAppKind(a.refHost)
	}
	return hostKind(a.refHost)
}

func (a *attribution) referrerTouchpoint() string {
	switch {
	case a.refHost == "":
		return TouchDirect
	case a.refScheme != "" && a.refScheme != "http" && a.refScheme != "https" && a.refScheme != "android-app":
		return TouchDirect
	case a.sameSite():
		return TouchDirect
	}
	if k := a.refKind(); k != "" {
		return k
	}
	return TouchReferral
}

// sameSite reports whether the referrer is on the page's registrable domain.
func (a *attribution) sameSite() bool {
	return a.pageHost != "" && a.refScheme != "android-app" && siteOf(a.refHost) == siteOf(a.pageHost)
}

func isEmailWord(s string) bool {
	return strings.EqualFold(s, "email") || strings.EqualFold(s, "e-mail") || strings.EqualFold(s, "e_mail") ||
		strings.EqualFold(s, "e mail") || strings.EqualFold(s, "newsletter") || strings.EqualFold(s, "mail")
}

// isPaidMedium follows GA4's paid medium pattern ^(.*cp.*|ppc|retargeting|paid.*)$
// plus the display words GA4 gives a channel of its own.
func isPaidMedium(m string) bool {
	if m == "" {
		return false
	}
	return indexFold(m, "cp") >= 0 || strings.EqualFold(m, "ppc") || strings.EqualFold(m, "retargeting") ||
		len(m) >= 4 && strings.EqualFold(m[:4], "paid") ||
		strings.EqualFold(m, "display") || strings.EqualFold(m, "banner") || strings.EqualFold(m, "ads") ||
		strings.EqualFold(m, "ad") || strings.EqualFold(m, "sem")
}

func isSocialMedium(m string) bool {
	return equalFoldAny(m, []string{"social", "social-network", "social-media", "sm", "social network",
		"social media", "social_media", "socialmedia", "organic_social", "organic-social"})
}

// sourceKind classifies a utm_source: a host name ("google.com",
// "m.facebook.com") by the referrer rules, a bare name ("google",
// "facebook", "ig") by the same brand lists.
func sourceKind(s string) string {
	if s == "" {
		return ""
	}
	if strings.IndexByte(s, '.') >= 0 {
		return hostKind(strings.ToLower(s))
	}
	switch {
	case equalFoldAny(s, searchSourceNames[:]):
		return TouchOrganicSearch
	case equalFoldAny(s, socialSourceNames[:]):
		return TouchSocial
	}
	return ""
}

// equalFoldAny reports whether s is one of words, ignoring case.
func equalFoldAny(s string, words []string) bool {
	for _, w := range words {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

package enrich

import (
	"strings"

	"github.com/mssola/useragent"
)

// Device types, as HubSpot's hs_device_type names them (minus its legacy
// "PDA" and "Personal Computer").
const (
	DeviceDesktop    = "Desktop"
	DeviceSmartphone = "Smartphone"
	DeviceTablet     = "Tablet"
	DeviceSmartTV    = "Smart TV"
	DeviceConsole    = "Game Console"
	DeviceWearable   = "Wearable Computer"
	DeviceUnknown    = "Unknown"
)

// uaInfo is what one user-agent string says. Values only: it is cached and
// shared between goroutines.
type uaInfo struct {
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	DeviceType     string
	IsBot          bool
}

// parseUA reads a user-agent string. github.com/mssola/useragent does the
// tokenising and the common browsers; what it gets wrong or does not know is
// corrected here from the raw string:
//
//   - Browsers it reports as "Android", "Safari" or "Chrome" although the
//     string names another: Samsung Internet, Edge on Android and iOS, Opera
//     variants, Yandex, Vivaldi, UC, MIUI, Huawei, Silk, Android WebView,
//     and the Facebook and Instagram in-app browsers.
//   - Device type, which it does not have (only a mobile flag, true for
//     Android tablets too): see deviceType.
//   - Bots it misses: automation (HeadlessChrome, PhantomJS, Lighthouse,
//     Selenium), HTTP libraries (curl, python-requests, Go, Java, okhttp…),
//     link-preview fetchers and AI crawlers: see botHint.
//   - OS names, normalised to what analysts group by: "Windows", "macOS",
//     "iOS", "Android", "ChromeOS", "Linux" and the TV and console systems.
func parseUA(s string) uaInfo {
	s = strings.TrimSpace(s)
	if s == "" {
		return uaInfo{DeviceType: DeviceUnknown}
	}
	ua := useragent.New(s)
	name, version := ua.Browser()
	osInfo := ua.OSInfo()
	info := uaInfo{
		Browser:        name,
		BrowserVersion: version,
		DeviceType:     deviceType(s, ua.Mobile()),
	}
	info.OS, info.OSVersion = normalizeOS(s, ua.Platform(), osInfo.Name, osInfo.Version)
	info.Browser, info.BrowserVersion = fixBrowser(s, info.Browser, info.BrowserVersion, info.DeviceType)

	hint := botHint(s)
	info.IsBot = ua.Bot() || hint != ""
	if info.IsBot && info.Browser == "" && hint != "" {
		info.Browser, info.BrowserVersion = productAt(s, hint)
	}
	return info
}

// browserTokens are product tokens that name a browser mssola does not
// recognise or misnames, in the order they are tried: a more specific token
// first (EdgA before Chrome, SamsungBrowser before Chrome, in-app browsers
// before the WebView they run in).
var browserTokens = [...]struct{ token, name string }{
	{"FBAV/", "Facebook"},
	{"Instagram ", "Instagram"},
	{"OculusBrowser/", "Oculus Browser"},
	{"SamsungBrowser/", "Samsung Internet"},
	{"EdgA/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"Edg/", "Edge"},
	{"OPR/", "Opera"},
	{"OPT/", "Opera"},
	{"OPiOS/", "Opera"},
	{"OPX/", "Opera"},
	{"YaBrowser/", "Yandex Browser"},
	{"Vivaldi/", "Vivaldi"},
	{"UCBrowser/", "UC Browser"},
	{"MiuiBrowser/", "MIUI Browser"},
	{"HuaweiBrowser/", "Huawei Browser"},
	{"Silk/", "Silk"},
	{"DuckDuckGo/", "DuckDuckGo"},
	{"NintendoBrowser/", "Nintendo Browser"},
	{"HeadlessChrome/", "Headless Chrome"},
	{"CriOS/", "Chrome"},
	{"FxiOS/", "Firefox"},
}

// fixBrowser corrects mssola's browser name and version from explicit
// product tokens (see browserTokens), then names Android WebView, and finally
// replaces mssola's fallback "Safari" on non-Apple devices (a TV's or
// console's WebKit browser).
func fixBrowser(s, name, version, device string) (string, string) {
	for _, bt := range browserTokens {
		if i := strings.Index(s, bt.token); i >= 0 {
			return bt.name, tokenVersion(s[i+len(bt.token):])
		}
	}
	// Android WebView marks itself with "; wv)" and carries the Chromium
	// version in its Chrome/ token.
	if strings.Contains(s, "; wv)") {
		if i := strings.Index(s, "Chrome/"); i >= 0 {
			return "Android WebView", tokenVersion(s[i+len("Chrome/"):])
		}
		return "Android WebView", ""
	}
	if name == "Safari" && !strings.Contains(s, "Macintosh") && !strings.Contains(s, "iPhone") &&
		!strings.Contains(s, "iPad") && !strings.Contains(s, "iPod") {
		switch {
		case strings.Contains(s, "Tizen"):
			return "Samsung Internet", ""
		case strings.Contains(s, "PlayStation"):
			return "PlayStation Browser", ""
		case strings.Contains(s, "Android"):
			return "Android Browser", version
		default:
			return "WebKit", ""
		}
	}
	// iOS apps without a browser product token (in-app web views).
	if name == "Mobile App" || (name == "Safari" && !strings.Contains(s, "Version/") && !strings.Contains(s, "Safari/")) {
		return "iOS WebView", ""
	}
	return name, version
}

// tokenVersion returns the version at the start of s, up to a space, ';' or
// ')'.
func tokenVersion(s string) string {
	end := strings.IndexAny(s, " ;)(")
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

// productAt returns the product token ("GPTBot/1.2") around the first
// case-insensitive match of hint in s, split into name and version.
func productAt(s, hint string) (string, string) {
	i := indexFold(s, hint)
	if i < 0 {
		return "", ""
	}
	start := strings.LastIndexAny(s[:i], " ;(") + 1
	end := i + strings.IndexAny(s[i:]+" ", " ;)(")
	tok := strings.TrimPrefix(s[start:end], "+")
	name, version, _ := strings.Cut(tok, "/")
	return name, version
}

// indexFold is strings.Index ignoring ASCII case; needle must be lower case.
func indexFold(s, needle string) int {
	n := len(needle)
	for i := 0; i+n <= len(s); i++ {
		match := true
		for j := 0; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// botSubstrings mark an automated client when found anywhere in the
// lower-cased user agent. Sources: the keyword lists of RudderStack
// (bot/crawler/spider), Jitsu (bot/spider/headless/crawler), PostHog's
// blocked-UA list and isbot's patterns (as used by Umami), narrowed to
// strings that do not occur in real browsers' user agents.
var botSubstrings = [...]string{
	"crawl", "spider", "slurp", "scrape", "headless", "phantomjs", "lighthouse", "pagespeed",
	"gtmetrix", "pingdom", "statuscake", "site24x7", "uptime", "selenium", "webdriver",
	"puppeteer", "playwright", "curl/", "wget/", "python-", "python/", "aiohttp", "httpx/",
	"go-http-client", "java/", "okhttp", "libwww", "httpclient", "axios/", "node-fetch",
	"undici", "postmanruntime", "insomnia", "facebookexternalhit", "facebookcatalog",
	"meta-externalagent", "meta-externalfetcher", "whatsapp/", "skypeuripreview", "bingpreview",
	"slack-imgproxy", "embedly", "mediapartners-google", "feedfetcher", "google-inspectiontool",
	"googleother", "google-read-aloud", "apis-google", "chatgpt-user", "claude-web",
	"anthropic-ai", "perplexity", "cohere-ai", "bytespider", "ia_archiver", "archive.org",
	"ahrefs", "semrush", "dataforseo", "yahoo! slurp",
}

// botHint returns the pattern that marks s as an automated client, or "".
// "bot" counts only at the end of a word ("Googlebot/", "AdsBot-Google",
// "bingbot;"), and not in "Cubot", an Android phone maker whose models
// contain it.
func botHint(s string) string {
	for _, p := range botSubstrings {
		if indexFold(s, p) >= 0 {
			return p
		}
	}
	rest := s
	off := 0
	for {
		i := indexFold(rest, "bot")
		if i < 0 {
			return ""
		}
		abs := off + i
		after := abs + 3
		wordEnd := after >= len(s) || !isAlnum(s[after])
		cubot := abs >= 2 && (s[abs-2] == 'c' || s[abs-2] == 'C') && (s[abs-1] == 'u' || s[abs-1] == 'U')
		if wordEnd && !cubot {
			return "bot"
		}
		off = after
		rest = s[after:]
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// tvTokens mark a television or TV stick: Samsung Tizen ("SMART-TV"), LG
// webOS ("Web0S", "NetCast"), HbbTV sets, Sony BRAVIA, Hisense VIDAA,
// Philips, Xiaomi ("MiTV"), Android/Google TV, Chromecast ("CrKey"), Apple
// TV, Roku and Amazon Fire TV (models "AFTxx").
var tvTokens = [...]string{
	"SMART-TV", "SmartTV", "Smart-TV", "SMARTTV", "Web0S", "WebOS TV", "webOS.TV", "NetCast",
	"HbbTV", "BRAVIA", "VIDAA", "PhilipsTV", "Android TV", "AndroidTV", "GoogleTV", "Google TV",
	"CrKey", "AppleTV", "Apple TV", "tvOS", "Roku", "; AFT", "TV Safari", "DTV)", "Opera TV", "MiTV",
}

var consoleTokens = [...]string{"PlayStation", "Xbox", "Nintendo"}

// wearableTokens mark watches (watchOS, Wear OS, Samsung's SM-R models) and
// head-mounted displays (Meta Quest), which are wearable computers too.
var wearableTokens = [...]string{
	"Watch OS", "watchOS", "(Watch", "Wear OS", "WearOS", "; SM-R", "SAMSUNG SM-R", "OculusBrowser/",
	"; Quest", "VR Safari",
}

// deviceType maps a user agent onto the device enumeration. First match wins:
//
//  1. Smart TV, Game Console, Wearable Computer: by the tokens above.
//  2. Tablet: iPad; "Tablet" (Firefox for Android tablets); Kindle ("Silk/",
//     "KF" models); PlayBook; Android without "Mobile" (Google's guidance:
//     phones send "Mobile", tablets do not).
//  3. Smartphone: iPhone, iPod, Android with "Mobile", Windows Phone,
//     BlackBerry, KaiOS, Opera Mini, or any other string mssola calls mobile.
//  4. Desktop: Windows, Macintosh, X11/Linux, ChromeOS.
//  5. Unknown: everything else (HTTP libraries, most crawlers).
//
// iPadOS Safari asks for desktop sites and sends a Macintosh user agent, so
// those iPads count as Desktop; so does a phone in "desktop site" mode.
func deviceType(s string, mobile bool) string {
	if containsAny(s, tvTokens[:]) {
		return DeviceSmartTV
	}
	if containsAny(s, consoleTokens[:]) {
		return DeviceConsole
	}
	if containsAny(s, wearableTokens[:]) {
		return DeviceWearable
	}
	android := strings.Contains(s, "Android")
	hasMobile := strings.Contains(s, "Mobile")
	switch {
	case strings.Contains(s, "iPad"), strings.Contains(s, "Tablet"), strings.Contains(s, "PlayBook"),
		strings.Contains(s, "Silk/"), strings.Contains(s, "; KF"):
		return DeviceTablet
	case android && !hasMobile:
		return DeviceTablet
	case strings.Contains(s, "iPhone"), strings.Contains(s, "iPod"), android,
		strings.Contains(s, "Windows Phone"), strings.Contains(s, "BlackBerry"), strings.Contains(s, "BB10"),
		strings.Contains(s, "KAIOS"), strings.Contains(s, "KaiOS"), strings.Contains(s, "Opera Mini"), mobile:
		return DeviceSmartphone
	case strings.Contains(s, "Windows"), strings.Contains(s, "Macintosh"), strings.Contains(s, "X11"),
		strings.Contains(s, "CrOS"), strings.Contains(s, "Linux"):
		return DeviceDesktop
	}
	return DeviceUnknown
}

// containsAny reports whether s contains any of tokens.
func containsAny(s string, tokens []string) bool {
	for _, t := range tokens {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// normalizeOS turns mssola's OS name into the names analysts group by.
func normalizeOS(s, platform, name, version string) (string, string) {
	switch {
	case strings.Contains(s, "Xbox"):
		return "Xbox", ""
	case strings.HasPrefix(platform, "PlayStation"):
		// "PlayStation 5/2.26": model, then firmware.
		model, fw, _ := strings.Cut(strings.TrimPrefix(name+" "+version, "PlayStation "), "/")
		return "PlayStation " + strings.TrimSpace(model), fw
	case strings.HasPrefix(platform, "Nintendo"):
		return platform, ""
	case strings.Contains(s, "Tizen"):
		i := strings.Index(s, "Tizen ")
		if i < 0 {
			return "Tizen", ""
		}
		return "Tizen", tokenVersion(s[i+len("Tizen "):])
	case strings.Contains(s, "Web0S"), strings.Contains(s, "webOS"):
		return "webOS", ""
	case platform == "iPhone" || platform == "iPad" || platform == "iPod" || name == "iPhone OS":
		return "iOS", version
	case name == "Mac OS X" || name == "Mac OS":
		return "macOS", version
	case strings.HasPrefix(name, "CrOS"):
		return "ChromeOS", version
	case name == "Android":
		return "Android", version
	case strings.HasPrefix(name, "Windows Phone"):
		return "Windows Phone", version
	case strings.HasPrefix(name, "Windows"):
		if name == "Windows" {
			// Windows 11 still says "Windows NT 10.0": 10 means 10 or 11.
			return "Windows", version
		}
		return "Windows", strings.TrimSpace(strings.TrimPrefix(name, "Windows"))
	case name == "Linux" || name == "Ubuntu" || name == "Fedora" || name == "Debian" || platform == "X11":
		return "Linux", ""
	case strings.Contains(s, "Android"):
		// Firefox for Android: "(Android 14; Mobile; rv:133.0)".
		if i := strings.Index(s, "Android "); i >= 0 {
			return "Android", tokenVersion(s[i+len("Android "):])
		}
		return "Android", ""
	}
	return name, version
}

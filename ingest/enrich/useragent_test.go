package enrich

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"
)

// uaCorpus is real user-agent strings as browsers, devices and crawlers send
// them, with what tally must make of each.
var uaCorpus = []struct {
	name string
	ua   string
	want uaInfo
}{
	{"Chrome Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "Windows", "10", DeviceDesktop, false}},
	{"Chrome macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "macOS", "10.15.7", DeviceDesktop, false}},
	{"Chrome Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "Android", "10", DeviceSmartphone, false}},
	{"Chrome Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "Linux", "", DeviceDesktop, false}},
	{"Chrome ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "ChromeOS", "14541.0.0", DeviceDesktop, false}},
	{"Chrome iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
		uaInfo{"Chrome", "131.0.6778.73", "iOS", "17.6", DeviceSmartphone, false}},
	{"Safari iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		uaInfo{"Safari", "18.1", "iOS", "18.1", DeviceSmartphone, false}},
	{"Safari iPad", "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		uaInfo{"Safari", "17.6", "iOS", "17.6", DeviceTablet, false}},
	// iPadOS Safari asks for desktop pages with exactly this string: it
	// cannot be told apart from a Mac.
	{"Safari macOS (or iPadOS desktop mode)", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
		uaInfo{"Safari", "17.6", "macOS", "10.15.7", DeviceDesktop, false}},
	{"Firefox Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
		uaInfo{"Firefox", "133.0", "Windows", "10", DeviceDesktop, false}},
	{"Firefox Ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		uaInfo{"Firefox", "133.0", "Linux", "", DeviceDesktop, false}},
	{"Firefox Android", "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
		uaInfo{"Firefox", "133.0", "Android", "14", DeviceSmartphone, false}},
	{"Firefox iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
		uaInfo{"Firefox", "133.0", "iOS", "17.6", DeviceSmartphone, false}},
	{"Edge Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		uaInfo{"Edge", "131.0.0.0", "Windows", "10", DeviceDesktop, false}},
	{"Edge Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
		uaInfo{"Edge", "131.0.0.0", "Android", "10", DeviceSmartphone, false}},
	{"Opera Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
		uaInfo{"Opera", "115.0.0.0", "Windows", "10", DeviceDesktop, false}},
	{"Yandex Browser", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
		uaInfo{"Yandex Browser", "24.12.0.0", "Windows", "10", DeviceDesktop, false}},
	{"Vivaldi", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18",
		uaInfo{"Vivaldi", "7.0.3495.18", "Windows", "10", DeviceDesktop, false}},
	{"Samsung Internet phone", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
		uaInfo{"Samsung Internet", "26.0", "Android", "14", DeviceSmartphone, false}},
	{"Samsung Internet tablet", "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Safari/537.36",
		uaInfo{"Samsung Internet", "25.0", "Android", "13", DeviceTablet, false}},
	{"Android WebView", "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/128.0.6613.127 Mobile Safari/537.36",
		uaInfo{"Android WebView", "128.0.6613.127", "Android", "14", DeviceSmartphone, false}},
	{"Android WebView tablet", "Mozilla/5.0 (Linux; Android 11; Nokia T20 Build/RP1A.201005.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/93.0.4577.62 Safari/537.36",
		uaInfo{"Android WebView", "93.0.4577.62", "Android", "11", DeviceTablet, false}},
	{"Kindle Fire Silk", "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.4.1 like Chrome/131.0.6778.108 Safari/537.36",
		uaInfo{"Silk", "131.4.1", "Android", "9", DeviceTablet, false}},
	{"Facebook in-app iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/472.0.0.40.106;FBBV/634486785;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
		uaInfo{"Facebook", "472.0.0.40.106", "iOS", "17.5", DeviceSmartphone, false}},
	{"Instagram in-app Android", "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/121.0.6167.178 Mobile Safari/537.36 Instagram 317.0.0.34.109 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 7; panther; panther; en_US; 562739837)",
		uaInfo{"Instagram", "317.0.0.34.109", "Android", "14", DeviceSmartphone, false}},
	{"Samsung smart TV", "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
		uaInfo{"Samsung Internet", "", "Tizen", "6.0", DeviceSmartTV, false}},
	{"LG webOS TV", "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
		uaInfo{"Chrome", "87.0.4280.88", "webOS", "", DeviceSmartTV, false}},
	{"Sony BRAVIA Android TV", "Mozilla/5.0 (Linux; Android 9; BRAVIA 4K UR2 Build/PTT1.190515.001.S52) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.120 Safari/537.36",
		uaInfo{"Chrome", "91.0.4472.120", "Android", "9", DeviceSmartTV, false}},
	{"Xiaomi Mi TV", "Mozilla/5.0 (Linux; Android 10; MiTV-MOOQ0 Build/QTG3.200305.006; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/94.0.4606.61 Mobile Safari/537.36",
		uaInfo{"Android WebView", "94.0.4606.61", "Android", "10", DeviceSmartTV, false}},
	{"PlayStation 5", "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
		uaInfo{"PlayStation Browser", "", "PlayStation 5", "2.26", DeviceConsole, false}},
	{"Xbox One Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		uaInfo{"Edge", "131.0.0.0", "Xbox", "", DeviceConsole, false}},
	{"Nintendo Switch", "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393",
		uaInfo{"Nintendo Browser", "5.1.0.20393", "Nintendo Switch", "", DeviceConsole, false}},
	{"Galaxy Watch5", "Mozilla/5.0 (Linux; Android 11; SAMSUNG SM-R925U) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/3.2. Chrome/111.0.5563.116 Mobile Safari/537.36",
		uaInfo{"Samsung Internet", "3.2.", "Android", "11", DeviceWearable, false}},
	{"Meta Quest Pro", "Mozilla/5.0 (X11; Linux x86_64; Quest Pro) AppleWebKit/537.36 (KHTML, like Gecko) OculusBrowser/24.4.0.22.60.426469926 SamsungBrowser/4.0 Chrome/106.0.5249.181 VR Safari/537.36",
		uaInfo{"Oculus Browser", "24.4.0.22.60.426469926", "Linux", "", DeviceWearable, false}},
	{"Chrome Android tablet", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "Android", "10", DeviceTablet, false}},
	{"Google app iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/335.0.671598613 Mobile/15E148 Safari/604.1",
		uaInfo{"Google App", "335.0.671598613", "iOS", "17.6", DeviceSmartphone, false}},
	{"LinkedIn in-app iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29.8962",
		uaInfo{"iOS WebView", "", "iOS", "17.5", DeviceSmartphone, false}},
	{"Firefox macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
		uaInfo{"Firefox", "133.0", "macOS", "10.15", DeviceDesktop, false}},
	{"Cubot phone is not a bot", "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		uaInfo{"Chrome", "131.0.0.0", "Android", "10", DeviceSmartphone, false}},

	{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		uaInfo{"Googlebot", "2.1", "", "", DeviceUnknown, true}},
	{"Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		uaInfo{"Googlebot", "2.1", "Android", "6.0.1", DeviceSmartphone, true}},
	{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		uaInfo{"bingbot", "2.0", "", "", DeviceUnknown, true}},
	{"GPTBot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
		uaInfo{"GPTBot", "1.2", "", "", DeviceUnknown, true}},
	{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		uaInfo{"facebookexternalhit", "1.1", "", "", DeviceUnknown, true}},
	{"curl", "curl/8.5.0", uaInfo{"curl", "8.5.0", "", "", DeviceUnknown, true}},
	{"python-requests", "python-requests/2.32.3", uaInfo{"python-requests", "2.32.3", "", "", DeviceUnknown, true}},
	{"HeadlessChrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
		uaInfo{"Headless Chrome", "131.0.0.0", "Linux", "", DeviceDesktop, true}},
	{"Lighthouse", "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
		uaInfo{"Chrome", "131.0.0.0", "Android", "11", DeviceSmartphone, true}},
	{"empty", "", uaInfo{"", "", "", "", DeviceUnknown, false}},
}

func TestParseUA(t *testing.T) {
	for _, tt := range uaCorpus {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseUA(tt.ua); got != tt.want {
				t.Errorf("parseUA(%q)\n got %+v\nwant %+v", tt.ua, got, tt.want)
			}
		})
	}
}

func TestBotHint(t *testing.T) {
	tests := []struct {
		ua   string
		want bool
	}{
		{"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", true},
		{"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", true},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", true},
		{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", true},
		{"Go-http-client/2.0", true},
		{"Mozilla/5.0 (Linux; Android 12; Cubot KingKong 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", false},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", false},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1 botanic", false},
	}
	for _, tt := range tests {
		if got := botHint(tt.ua) != ""; got != tt.want {
			t.Errorf("botHint(%q) = %q; want bot %v", tt.ua, botHint(tt.ua), tt.want)
		}
	}
}

func TestUACacheBounded(t *testing.T) {
	const size = 64
	c := newUACache(size)
	for i := 0; i < 10*size; i++ {
		c.get(fmt.Sprintf("curl/%d", i))
		if n := c.len(); n > size {
			t.Fatalf("after %d inserts the cache holds %d entries; want at most %d", i+1, n, size)
		}
	}
	// A string in steady use survives any number of rotations.
	hot := uaCorpus[0].ua
	for i := 0; i < 10*size; i++ {
		if got := c.get(hot); got != uaCorpus[0].want {
			t.Fatalf("get(hot) = %+v; want %+v", got, uaCorpus[0].want)
		}
		c.get(fmt.Sprintf("wget/%d", i))
	}
	sh := &c.shards[hashShard(c, hot)]
	sh.mu.Lock()
	_, inCur := sh.cur[hot]
	_, inPrev := sh.prev[hot]
	sh.mu.Unlock()
	if !inCur && !inPrev {
		t.Errorf("hot user agent was evicted")
	}
}

func TestUACacheLongStringsNotKept(t *testing.T) {
	c := newUACache(64)
	long := uaCorpus[0].ua + " " + string(make([]byte, maxCachedUALen))
	c.get(long)
	if n := c.len(); n != 0 {
		t.Errorf("cache holds %d entries after a %d-byte user agent; want 0", n, len(long))
	}
}

func TestUACacheConcurrent(t *testing.T) {
	c := newUACache(32)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				tt := uaCorpus[(i+g)%len(uaCorpus)]
				if got := c.get(tt.ua); got != tt.want {
					t.Errorf("get(%q) = %+v; want %+v", tt.ua, got, tt.want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestUAShardIsOneCacheLine(t *testing.T) {
	if got := unsafe.Sizeof(uaShard{}); got != 64 {
		t.Errorf("sizeof(uaShard) = %d; want 64 (adjust the padding)", got)
	}
}

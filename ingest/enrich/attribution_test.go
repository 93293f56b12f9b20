package enrich

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTouchpoint(t *testing.T) {
	const page = "https://shop.example.com/cars/volvo"
	tests := []struct {
		name     string
		url, ref string
		want     string
	}{
		// 6a, 6b: direct.
		{"no referrer", page, "", TouchDirect},
		{"about:blank referrer", page, "about:blank", TouchDirect},
		{"same host referrer is not a referral", page, "https://shop.example.com/", TouchDirect},
		{"www twin is the same site", page, "https://www.shop.example.com/x", TouchDirect},
		{"sibling subdomain is the same site", page, "https://blog.example.com/post", TouchDirect},
		{"same site under a two-level suffix", "https://shop.example.co.uk/", "https://blog.example.co.uk/", TouchDirect},
		{"other site under the same two-level suffix", "https://shop.example.co.uk/", "https://other.co.uk/", TouchReferral},

		// 6d: organic search.
		{"google", page, "https://www.google.com/", TouchOrganicSearch},
		{"google country domain", page, "https://www.google.co.uk/", TouchOrganicSearch},
		{"google.de", page, "https://google.de/", TouchOrganicSearch},
		{"bing", page, "https://www.bing.com/search?q=volvo", TouchOrganicSearch},
		{"duckduckgo", page, "https://duckduckgo.com/", TouchOrganicSearch},
		{"yahoo search", page, "https://search.yahoo.com/", TouchOrganicSearch},
		{"yahoo japan search", page, "https://search.yahoo.co.jp/search?p=x", TouchOrganicSearch},
		{"baidu", page, "https://www.baidu.com/link?url=abc", TouchOrganicSearch},
		{"yandex", page, "https://yandex.ru/", TouchOrganicSearch},
		{"ecosia", page, "https://www.ecosia.org/", TouchOrganicSearch},
		{"brave search", page, "https://search.brave.com/", TouchOrganicSearch},
		{"google docs is a referral", page, "https://docs.google.com/document/d/1", TouchReferral},
		{"google app on android", page, "android-app://com.google.android.googlequicksearchbox/", TouchOrganicSearch},

		// 6e: email.
		{"gmail web", page, "https://mail.google.com/", TouchEmail},
		{"outlook web", page, "https://outlook.live.com/", TouchEmail},
		{"yahoo mail", page, "https://mail.yahoo.com/", TouchEmail},
		{"gmail app", page, "android-app://com.google.android.gm/", TouchEmail},
		{"mail tool click-tracking host", page, "https://email.mg.acme-mail.com/c/xyz", TouchEmail},

		// 6f: social.
		{"facebook link shim", page, "https://l.facebook.com/", TouchSocial},
		{"facebook mobile", page, "https://m.facebook.com/", TouchSocial},
		{"instagram", page, "https://l.instagram.com/", TouchSocial},
		{"t.co", page, "https://t.co/abc", TouchSocial},
		{"x.com", page, "https://x.com/", TouchSocial},
		{"linkedin", page, "https://www.linkedin.com/", TouchSocial},
		{"reddit", page, "https://www.reddit.com/r/cars", TouchSocial},
		{"youtube", page, "https://www.youtube.com/", TouchSocial},
		{"hacker news", page, "https://news.ycombinator.com/", TouchSocial},
		{"facebook app", page, "android-app://com.facebook.katana/", TouchSocial},
		{"x.org is not social", page, "https://x.org/", TouchReferral},

		// 6g: referrals.
		{"blog", page, "https://www.carblog.example.org/best-cars", TouchReferral},
		{"unknown android app", page, "android-app://org.example.reader/", TouchReferral},
		{"referrer with port and user info", page, "https://user@partner.example.net:8443/x", TouchReferral},

		// 1, 2: click ids.
		{"gclid", page + "?gclid=Cj0KCQ", "", TouchPaidSearch},
		{"gclid wins over a search referrer", page + "?gclid=Cj0KCQ", "https://www.google.com/", TouchPaidSearch},
		{"gclid wins over utm", page + "?utm_source=newsletter&utm_medium=email&gclid=x", "", TouchPaidSearch},
		{"gbraid", page + "?gbraid=0AAAAA", "", TouchPaidSearch},
		{"wbraid", page + "?wbraid=Cl", "", TouchPaidSearch},
		{"gad_source alone", page + "?gad_source=1", "https://www.google.com/", TouchPaidSearch},
		{"msclkid", page + "?msclkid=abc", "https://www.bing.com/", TouchPaidSearch},
		{"ttclid", page + "?ttclid=E.C.P", "", TouchPaidSocial},
		{"li_fat_id", page + "?li_fat_id=1234", "https://www.linkedin.com/", TouchPaidSocial},
		{"twclid", page + "?twclid=2-abc", "https://t.co/x", TouchPaidSocial},
		{"ScCid mixed case", page + "?ScCid=abc", "", TouchPaidSocial},
		{"empty click id is ignored", page + "?gclid=", "https://www.bing.com/", TouchOrganicSearch},

		// 3: email tools.
		{"hubspot email", page + "?_hsenc=p2ANqtz&_hsmi=123", "", TouchEmail},
		{"mailchimp", page + "?mc_cid=abc&mc_eid=def", "https://www.google.com/", TouchEmail},

		// 4: UTM.
		{"utm email", page + "?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "", TouchEmail},
		{"utm e-mail", page + "?utm_medium=E-Mail", "", TouchEmail},
		{"utm source newsletter", page + "?utm_source=Newsletter&utm_medium=link", "", TouchEmail},
		{"cpc on google", page + "?utm_source=google&utm_medium=cpc", "", TouchPaidSearch},
		{"ppc on bing", page + "?utm_source=bing&utm_medium=ppc", "", TouchPaidSearch},
		{"paid on google host", page + "?utm_source=google.com&utm_medium=paid", "", TouchPaidSearch},
		{"paidsearch medium, unknown source", page + "?utm_source=acme&utm_medium=paidsearch", "", TouchPaidSearch},
		{"cpc with search referrer", page + "?utm_source=spring&utm_medium=cpc", "https://www.google.com/", TouchPaidSearch},
		{"cpc on facebook", page + "?utm_source=facebook&utm_medium=cpc", "", TouchPaidSocial},
		{"paid_social medium", page + "?utm_source=acme&utm_medium=paid_social", "", TouchPaidSocial},
		{"paid on instagram with fbclid", page + "?utm_source=ig&utm_medium=paid&fbclid=IwAR", "", TouchPaidSocial},
		{"cpc with social referrer", page + "?utm_source=spring&utm_medium=cpc", "https://l.facebook.com/", TouchPaidSocial},
		{"cpm display", page + "?utm_source=dv360&utm_medium=cpm", "", TouchOtherCampaigns},
		{"display", page + "?utm_source=network&utm_medium=display", "", TouchOtherCampaigns},
		{"retargeting elsewhere", page + "?utm_source=criteo&utm_medium=retargeting", "", TouchOtherCampaigns},
		{"social medium", page + "?utm_source=acme&utm_medium=social", "", TouchSocial},
		{"social source without medium", page + "?utm_source=linkedin", "", TouchSocial},
		{"organic medium", page + "?utm_source=acme&utm_medium=organic", "", TouchOrganicSearch},
		{"search source without medium", page + "?utm_source=google", "", TouchOrganicSearch},
		{"referral medium", page + "?utm_source=partner&utm_medium=referral", "", TouchReferral},
		{"campaign only", page + "?utm_campaign=black-friday", "https://www.google.com/", TouchOtherCampaigns},
		{"unknown medium", page + "?utm_source=podcast&utm_medium=audio", "", TouchOtherCampaigns},
		{"utm beats a social referrer", page + "?utm_source=partner&utm_medium=affiliate", "https://t.co/x", TouchOtherCampaigns},
		{"utm keys are case-insensitive", page + "?UTM_Source=google&UTM_MEDIUM=CPC", "", TouchPaidSearch},
		{"utm_term alone is not a campaign", page + "?utm_term=volvo", "", TouchDirect},

		// 5: weak click ids.
		{"fbclid alone is social", page + "?fbclid=IwAR0abc", "", TouchSocial},
		{"fbclid with facebook referrer", page + "?fbclid=IwAR0abc", "https://l.facebook.com/", TouchSocial},
		{"dclid is display", page + "?dclid=CJ", "", TouchOtherCampaigns},

		// Odd URLs.
		{"fragment is not the query", page + "#utm_source=google&utm_medium=cpc", "", TouchDirect},
		{"relative page URL", "/cars?utm_medium=email", "", TouchEmail},
		{"no page URL, external referrer", "", "https://www.google.com/", TouchOrganicSearch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parseAttribution(tt.url, tt.ref)
			if got := a.touchpoint(); got != tt.want {
				t.Errorf("touchpoint(%q, %q) = %s; want %s", tt.url, tt.ref, got, tt.want)
			}
		})
	}
}

func TestParseAttribution(t *testing.T) {
	tests := []struct {
		url  string
		want attribution
	}{
		{"https://shop.example.com/cars/volvo?utm_source=google&utm_medium=cpc&utm_campaign=Spring%20Sale&utm_term=volvo+xc60&utm_content=ad%2F1&gclid=Cj0KCQ",
			attribution{Path: "/cars/volvo", UTMSource: "google", UTMMedium: "cpc", UTMCampaign: "Spring Sale",
				UTMTerm: "volvo xc60", UTMContent: "ad/1", ClickIDParam: "gclid", ClickID: "Cj0KCQ"}},
		{"https://shop.example.com", attribution{Path: "/"}},
		{"https://shop.example.com/stra%C3%9Fe?x=1", attribution{Path: "/straße"}},
		{"https://shop.example.com/bad%zzescape", attribution{Path: "/bad%zzescape"}},
		{"https://shop.example.com/?utm_source=a&utm_source=b", attribution{Path: "/", UTMSource: "a"}},
		{"https://shop.example.com/?fbclid=F&gclid=G", attribution{Path: "/", ClickIDParam: "fbclid", ClickID: "F"}},
		{"https://shop.example.com/?utm_campaign=%zz", attribution{Path: "/", UTMCampaign: "%zz"}},
		{"https://shop.example.com/?utm_source=+spaced+", attribution{Path: "/", UTMSource: "spaced"}},
		{"https://shop.example.com/?gad_source=1", attribution{Path: "/"}},
		{"/only/path?utm_medium=email", attribution{Path: "/only/path", UTMMedium: "email"}},
		{"shop.example.com/cars", attribution{Path: "/cars"}},
		{"", attribution{}},
	}
	for _, tt := range tests {
		got := parseAttribution(tt.url, "")
		got.pageHost, got.refHost, got.refScheme, got.signals = "", "", "", 0
		if got != tt.want {
			t.Errorf("parseAttribution(%q)\n got %+v\nwant %+v", tt.url, got, tt.want)
		}
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct {
		in                        string
		scheme, host, path, query string
	}{
		{"https://Shop.Example.COM:8443/a/b?x=1#f", "https", "shop.example.com", "/a/b", "x=1"},
		{"HTTP://user:pw@example.com./", "http", "example.com", "/", ""},
		{"https://[2001:db8::1]:443/p", "https", "2001:db8::1", "/p", ""},
		{"//cdn.example.com/x", "", "cdn.example.com", "/x", ""},
		{"/x?y", "", "", "/x", "y"},
		{"example.com:8080/x", "", "example.com", "/x", ""},
		{"android-app://com.google.android.gm/", "android-app", "com.google.android.gm", "/", ""},
		{"about:blank", "about", "", "", ""},
		{"  https://example.com  ", "https", "example.com", "", ""},
	}
	for _, tt := range tests {
		s, h, p, q := splitURL(tt.in)
		if s != tt.scheme || h != tt.host || p != tt.path || q != tt.query {
			t.Errorf("splitURL(%q) = %q, %q, %q, %q; want %q, %q, %q, %q", tt.in, s, h, p, q, tt.scheme, tt.host, tt.path, tt.query)
		}
	}
}

func TestSiteOf(t *testing.T) {
	tests := []struct{ host, want string }{
		{"shop.example.com", "example.com"},
		{"example.com", "example.com"},
		{"a.b.example.co.uk", "example.co.uk"},
		{"www.google.com.au", "google.com.au"},
		{"google.de", "google.de"},
		{"t.co", "t.co"},
		{"localhost", "localhost"},
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := siteOf(tt.host); got != tt.want {
			t.Errorf("siteOf(%q) = %q; want %q", tt.host, got, tt.want)
		}
	}
}

var touchpoints = map[string]bool{
	TouchDirect: true, TouchOrganicSearch: true, TouchPaidSearch: true, TouchSocial: true,
	TouchPaidSocial: true, TouchEmail: true, TouchReferral: true, TouchOtherCampaigns: true,
}

func FuzzAttribution(f *testing.F) {
	for _, s := range [][2]string{
		{"https://shop.example.com/cars?utm_source=google&utm_medium=cpc&gclid=x", "https://www.google.com/"},
		{"/p?utm_campaign=%zz&fbclid=", "android-app://com.google.android.gm/"},
		{"https://[::1]:80/a%2Fb?#", "about:blank"},
		{"//h/?=&&=x&utm_=1", "https://user@h:1/"},
		{"shop.example.co.uk:8080", "HTTPS://BLOG.EXAMPLE.CO.UK."},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, page, ref string) {
		a := parseAttribution(page, ref)
		tp := a.touchpoint()
		if !touchpoints[tp] {
			t.Fatalf("touchpoint(%q, %q) = %q; not in the enumeration", page, ref, tp)
		}
		if again := parseAttribution(page, ref); again != a {
			t.Fatalf("parseAttribution(%q, %q) is not deterministic", page, ref)
		}
		// Nothing extracted is longer than the URL it came from.
		for _, v := range []string{a.Path, a.UTMSource, a.UTMMedium, a.UTMCampaign, a.UTMTerm, a.UTMContent, a.ClickID} {
			if len(v) > len(page) {
				t.Fatalf("parseAttribution(%q): field %q longer than the URL", page, v)
			}
		}
		if a.pageHost != strings.ToLower(a.pageHost) || a.refHost != strings.ToLower(a.refHost) {
			t.Fatalf("hosts not lower case: %q %q", a.pageHost, a.refHost)
		}
		// Where net/url reads an ordinary absolute http(s) URL, the host
		// agrees with it. (Percent-escapes in a host are left as sent: no
		// browser sends them, and an escaped host matches no rule anyway.)
		if u, err := url.Parse(page); err == nil && (u.Scheme == "http" || u.Scheme == "https") &&
			u.Opaque == "" && utf8.ValidString(page) && !strings.ContainsAny(page, "\\ \t\r\n") &&
			!strings.Contains(u.Host, "%") {
			want := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
			if a.pageHost != want {
				t.Fatalf("host of %q = %q; net/url says %q", page, a.pageHost, want)
			}
		}
	})
}

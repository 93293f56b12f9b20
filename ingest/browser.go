package ingest

import (
	"bytes"
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// Cookie names the collector sets. The visitor cookie is HttpOnly: the
// snippet never needs the id, only the server does, and an id JS cannot read
// is one third-party scripts on the page cannot read either.
const (
	VisitorCookie = "_tally_id"
	SessionCookie = "_tally_ses"
)

// Cookie and script defaults, with their reasons.
const (
	// defaultCookieDays: 390 days (13 months), the longest lifetime common
	// consent regimes accept; browsers clamp any cookie to 400 days.
	defaultCookieDays = 390
	maxCookieDays     = 400
	// scriptMaxAge: the script carries the site's capture triggers and
	// mirror rules, so a config change must reach browsers within minutes;
	// 5 min × must-revalidate, and the ETag makes the revalidation a 304.
	scriptMaxAge = 5 * 60
	// preflightMaxAge: 24 h, the most Chromium honours for preflight caching
	// (Firefox allows more, but 24 h is plenty for a path that normally
	// sends no preflight at all: text/plain bodies are CORS-simple).
	preflightMaxAge = 24 * 60 * 60
	// maxBrowserEvents bounds one snippet batch: the snippet sends at most
	// 100 queued completions at once (its retry queue's cap).
	maxBrowserEvents = 100
	// maxTraitLen bounds an identify trait (an email, a phone number, a
	// name); traits are not properties, but the same 256-character limit
	// keeps one bad call from bloating every following completion.
	maxTraitLen = MaxValueLen
)

// browserRoutes mounts the snippet's paths: the tracker script and the
// collection endpoint.
func (c *Collector) browserRoutes(app *fiber.App) {
	app.Get("/t.js", c.serveScript)
	app.Options(c.cfg.EventPath, c.preflight)
	app.Post(c.cfg.EventPath, c.collect)
}

// clientIP is the address the request came from: the peer, or the first
// untrusted hop of X-Forwarded-For/Forwarded when the peer is a trusted
// proxy. The result is a new string, never fiber's buffer.
func (c *Collector) clientIP(ctx *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(ctx.Context().RemoteIP())
	h := &ctx.Request().Header
	ip := c.proxies.ClientIP(peer.Unmap(), joinHeader(h.PeekAll(fiber.HeaderXForwardedFor)), joinHeader(h.PeekAll("Forwarded")))
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// joinHeader folds a header sent on several lines into one list, as RFC
// 9110 allows for list-valued fields; proxies may append a line rather than
// extend the first.
func joinHeader(lines [][]byte) string {
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return string(lines[0])
	}
	return string(bytes.Join(lines, []byte(",")))
}

// serveScript answers GET /t.js[?site=ID] with the site's built tracker:
// gzip when accepted, an ETag per representation, and a short max-age with
// must-revalidate so config changes reach browsers quickly while repeat
// visits cost a 304.
func (c *Collector) serveScript(ctx *fiber.Ctx) error {
	if c.cfg.Scripts == nil {
		return fiber.NewError(fiber.StatusNotFound, "no tracker is configured")
	}
	site := ctx.Query("site")
	if site == "" && len(c.cfg.Sites) == 1 {
		site = c.cfg.Sites[0].ID
	}
	s, ok := c.cfg.Scripts.Script(site)
	if !ok {
		ctx.Set(fiber.HeaderCacheControl, "no-store")
		return ctx.Status(fiber.StatusNotFound).SendString("/* tally: unknown site; load /t.js?site=<id> with a site id from tally.yaml */\n")
	}
	body, etag := s.JS, s.ETag
	gz := len(s.Gzip) > 0 && acceptsGzip(ctx.Get(fiber.HeaderAcceptEncoding))
	if gz {
		body, etag = s.Gzip, gzipETag(s.ETag)
	}
	ctx.Set(fiber.HeaderContentType, "application/javascript; charset=utf-8")
	ctx.Set(fiber.HeaderCacheControl, "public, max-age="+strconv.Itoa(scriptMaxAge)+", must-revalidate")
	ctx.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	ctx.Set(fiber.HeaderETag, etag)
	ctx.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(ctx.Get(fiber.HeaderIfNoneMatch), etag) {
		return ctx.SendStatus(fiber.StatusNotModified)
	}
	if gz {
		ctx.Set(fiber.HeaderContentEncoding, "gzip")
	}
	return ctx.Send(body)
}

// gzipETag gives the gzip representation its own strong tag, as HTTP asks
// of a different byte sequence: "abc" becomes "abc-gz".
func gzipETag(etag string) string {
	if strings.HasSuffix(etag, `"`) {
		return etag[:len(etag)-1] + `-gz"`
	}
	return etag + "-gz"
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// originHost returns the host (without port) of an Origin header or a
// Referer URL; "" when there is none or it does not parse.
func originHost(v string) string {
	if v == "" || v == "null" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// AllowsHost reports whether host is one of the site's domains. A domain
// "*.example.com" admits every subdomain of example.com (not example.com
// itself, which is listed on its own).
func (s *Site) AllowsHost(host string) bool {
	if host == "" {
		return false
	}
	for _, d := range s.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
			continue
		}
		if host == d {
			return true
		}
	}
	return false
}

// anySiteAllows is the preflight's answer: the request has no body yet, so
// the origin is checked against every site; the POST is checked against the
// batch's own site.
func (c *Collector) anySiteAllows(host string) bool {
	return c.siteAllowing(host) != nil
}

// corsHeaders allows a configured origin to read the answer and to send and
// receive cookies. The Origin is echoed, never "*", because credentials are
// allowed.
func corsHeaders(ctx *fiber.Ctx, origin string) {
	ctx.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	ctx.Set(fiber.HeaderAccessControlAllowCredentials, "true")
}

// preflight answers OPTIONS on the event path. The snippet sends text/plain
// and needs none; it is here for clients that send application/json.
func (c *Collector) preflight(ctx *fiber.Ctx) error {
	ctx.Vary(fiber.HeaderOrigin)
	origin := ctx.Get(fiber.HeaderOrigin)
	if !c.anySiteAllows(originHost(origin)) {
		return refuse(ctx, fiber.StatusForbidden, "origin not allowed: no site in tally.yaml lists "+clip(originHost(origin), 100))
	}
	corsHeaders(ctx, strings.Clone(origin))
	ctx.Set(fiber.HeaderAccessControlAllowMethods, "POST, OPTIONS")
	ctx.Set(fiber.HeaderAccessControlAllowHeaders, "Content-Type")
	ctx.Set(fiber.HeaderAccessControlMaxAge, strconv.Itoa(preflightMaxAge))
	return ctx.SendStatus(fiber.StatusNoContent)
}

// browserFacts is what the /e handler copies out of the request before
// parsing, so nothing of fiber's reused buffers reaches a Completion.
type browserFacts struct {
	origin    string
	host      string // Origin's host, or the Referer's when Origin is absent
	userAgent string
	language  string
	ip        string
	gpc       bool
	secure    bool
	visitor   string // _tally_id cookie as sent
	session   string // _tally_ses cookie as sent
}

func (c *Collector) factsOf(ctx *fiber.Ctx) browserFacts {
	f := browserFacts{
		origin:    strings.Clone(ctx.Get(fiber.HeaderOrigin)),
		userAgent: strings.Clone(ctx.Get(fiber.HeaderUserAgent)),
		language:  firstLanguage(ctx.Get(fiber.HeaderAcceptLanguage)),
		ip:        c.clientIP(ctx),
		gpc:       ctx.Get("Sec-GPC") == "1",
		secure:    c.isHTTPS(ctx),
		visitor:   strings.Clone(ctx.Cookies(VisitorCookie)),
		session:   strings.Clone(ctx.Cookies(SessionCookie)),
	}
	f.host = originHost(f.origin)
	if f.origin == "" {
		f.host = originHost(strings.Clone(ctx.Get(fiber.HeaderReferer)))
	}
	return f
}

// isHTTPS reports whether the visitor reached tally over https: the
// connection's own TLS, or X-Forwarded-Proto from a trusted proxy (a header
// from anyone else says nothing).
func (c *Collector) isHTTPS(ctx *fiber.Ctx) bool {
	if ctx.Context().IsTLS() {
		return true
	}
	peer, _ := netip.AddrFromSlice(ctx.Context().RemoteIP())
	return c.proxies.Trusted(peer.Unmap()) && strings.EqualFold(ctx.Get(fiber.HeaderXForwardedProto), "https")
}

// firstLanguage returns the first tag of an Accept-Language header, copied.
func firstLanguage(al string) string {
	tag, _, _ := strings.Cut(al, ",")
	tag, _, _ = strings.Cut(tag, ";")
	tag = strings.TrimSpace(tag)
	if len(tag) > 35 || tag == "*" { // BCP 47 tags in practice fit 35 bytes
		return ""
	}
	return strings.Clone(tag)
}

// collect answers POST /e: a snippet batch. Every good completion of the
// batch is stored even when others in it are malformed or unknown; those go
// to rejections. The answer is 204 as soon as the Sink has the batch.
func (c *Collector) collect(ctx *fiber.Ctx) error {
	ctx.Vary(fiber.HeaderOrigin)
	f := c.factsOf(ctx)
	now := c.now()
	// The origin is checked before the body is read or inflated: a page no
	// site admits costs nothing more than its headers.
	allowing := c.siteAllowing(f.host)
	if allowing == nil {
		return refuse(ctx, fiber.StatusForbidden, "origin not allowed: no site in tally.yaml lists "+clip(f.host, 100))
	}
	body, err := readBody(ctx, c.cfg.MaxBodyBytes)
	if err != nil {
		var eb *errBody
		if errors.As(err, &eb) {
			if f.origin != "" {
				corsHeaders(ctx, f.origin)
			}
			return refuse(ctx, eb.Code, eb.Reason)
		}
		return err
	}
	batch, err := ParseBrowserBatch(c.catalog, body, BrowserContext{
		Now: now, UserAgent: f.userAgent, Language: f.language, IP: f.ip, GPC: f.gpc,
	})
	if err != nil {
		// Not a batch at all, so its site is unknown: any configured origin
		// may hear so (the snippet does not retry a 400), and the rejection
		// is recorded against the first site that admits the origin.
		if f.origin != "" {
			corsHeaders(ctx, f.origin)
		}
		c.reject([]Rejection{{At: now.UTC(), Site: allowing.ID, Source: SourceBrowser, Reason: "INVALID_JSON",
			Field: "body", Payload: boundPayload(body)}})
		return refuse(ctx, fiber.StatusBadRequest, "body is not a snippet batch: "+clip(err.Error(), 200))
	}
	site := c.siteOf(batch.Site)
	if site == nil || !site.AllowsHost(f.host) {
		// Unknown site or a foreign origin: no CORS headers, so the page
		// cannot read the answer, and nothing is stored.
		c.reject([]Rejection{{At: now.UTC(), Site: batch.Site, Source: SourceBrowser, Reason: "FORBIDDEN_ORIGIN",
			Field: "origin", Payload: boundPayload([]byte(f.origin))}})
		if site == nil {
			return refuse(ctx, fiber.StatusForbidden, "unknown site "+strconv.Quote(clip(batch.Site, 50)))
		}
		return refuse(ctx, fiber.StatusForbidden, "site "+strconv.Quote(site.ID)+" does not list origin "+clip(f.host, 100))
	}
	if f.origin != "" {
		corsHeaders(ctx, f.origin)
	}
	for i := range batch.Rejections {
		batch.Rejections[i].Site = site.ID
	}
	c.reject(batch.Rejections)

	if len(batch.Completions) == 0 {
		switch {
		case batch.Withdrawn:
			c.identifyBrowser(ctx, site, f, false, now) // expires the cookies
		case batch.Identity != nil && c.cfg.OnIdentify != nil:
			visitor, _ := c.identifyBrowser(ctx, site, f, true, now)
			c.cfg.OnIdentify(visitor, *batch.Identity)
		}
		return ctx.SendStatus(fiber.StatusNoContent)
	}
	visitor, session := c.identifyBrowser(ctx, site, f, batch.Analytics, now)
	for i := range batch.Completions {
		comp := &batch.Completions[i]
		comp.Site = site.ID
		if comp.Consent.Analytics {
			comp.VisitorID, comp.SessionID = visitor, session
		}
	}
	if err := c.accept(ctx.UserContext(), batch.Completions); err != nil {
		return err
	}
	return ctx.SendStatus(fiber.StatusNoContent)
}

// refuse answers a snippet request that is not taken with a short reason
// in plain text: the tracker does not read it, but a developer looking at
// the request does.
func refuse(ctx *fiber.Ctx, code int, reason string) error {
	ctx.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return ctx.Status(code).SendString(reason)
}

// siteAllowing is the first site whose domains admit host, or nil.
func (c *Collector) siteAllowing(host string) *Site {
	for i := range c.cfg.Sites {
		if c.cfg.Sites[i].AllowsHost(host) {
			return &c.cfg.Sites[i]
		}
	}
	return nil
}

func (c *Collector) siteOf(id string) *Site {
	if id == "" && len(c.cfg.Sites) == 1 {
		return &c.cfg.Sites[0]
	}
	return c.sites[id]
}

// identifyBrowser sets or clears the visitor and session cookies and
// returns their ids. With analytics consent the visitor id is the cookie's
// (minted here on the first hit, so it is a server-set cookie that Safari
// does not cap at 7 days) and the session cookie is refreshed on every hit,
// so it lapses after SessionTimeout of inactivity. Without consent both are
// cleared and the completions are anonymous.
func (c *Collector) identifyBrowser(ctx *fiber.Ctx, site *Site, f browserFacts, analytics bool, now time.Time) (visitor, session string) {
	base := fiber.Cookie{Path: "/", Domain: site.CookieDomain, Secure: f.secure, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode}
	if !analytics {
		for _, ck := range []struct{ name, sent string }{{VisitorCookie, f.visitor}, {SessionCookie, f.session}} {
			if ck.sent != "" {
				expired := base
				expired.Name, expired.Value, expired.MaxAge, expired.Expires = ck.name, "", -1, time.Unix(0, 0)
				ctx.Cookie(&expired)
			}
		}
		return "", ""
	}
	visitor, session = f.visitor, f.session
	if !validID(visitor) {
		visitor = uuid.NewString()
	}
	if !validID(session) {
		session = uuid.NewString()
	}
	days := site.CookieDays
	if days <= 0 {
		days = defaultCookieDays
	}
	days = min(days, maxCookieDays)
	vc := base
	vc.Name, vc.Value, vc.MaxAge = VisitorCookie, visitor, days*24*60*60
	vc.Expires = now.Add(time.Duration(days) * 24 * time.Hour)
	ctx.Cookie(&vc)
	sc := base
	sc.Name, sc.Value, sc.MaxAge = SessionCookie, session, int(c.cfg.SessionTimeout/time.Second)
	sc.Expires = now.Add(c.cfg.SessionTimeout)
	ctx.Cookie(&sc)
	return visitor, session
}

// validID accepts the ids tally mints (UUIDs) and nothing that could carry
// markup or bloat rows: 8–64 characters of [A-Za-z0-9-].
func validID(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

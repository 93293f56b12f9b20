package store

import (
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// EventBatch is completions encoded as the columns of the events table, in
// eventColumns order, ready to be appended column by column to an INSERT.
// A batch is reused across flushes: Reset keeps its capacity, so a writer in
// steady state encodes without allocating.
type EventBatch struct {
	eventID, site, eventName       []string
	occurredAt                     []time.Time
	occurredMs                     []uint16
	receivedAt                     []time.Time
	source, visitorID, sessionID   []string
	email, objectID                []string
	url, path, referrer, pageTitle []string
	utmSource, utmMedium           []string
	utmCampaign, utmTerm           []string
	utmContent                     []string
	touchpoint, clickIDParam       []string
	clickID, ip, userAgent         []string
	language, browser              []string
	browserVersion, os, osVersion  []string
	deviceType                     []string
	isBot                          []uint8
	country, region, city          []string
	propKeys, propValues           [][]string
	truncated                      [][]string

	// arena backs the inner slices of propKeys, propValues and truncated, so
	// a row costs no allocation of its own. The driver copies the values
	// into its own buffers on append, so the arena is reused after a flush.
	arena []string
}

// Len is the number of rows in the batch.
func (b *EventBatch) Len() int { return len(b.eventID) }

// Reset empties the batch and keeps its memory.
func (b *EventBatch) Reset() {
	for _, s := range b.strings() {
		clear(*s) // drop references so the completions can be collected
		*s = (*s)[:0]
	}
	b.occurredAt, b.occurredMs, b.receivedAt, b.isBot = b.occurredAt[:0], b.occurredMs[:0], b.receivedAt[:0], b.isBot[:0]
	clear(b.propKeys)
	clear(b.propValues)
	clear(b.truncated)
	clear(b.arena)
	b.propKeys, b.propValues, b.truncated, b.arena = b.propKeys[:0], b.propValues[:0], b.truncated[:0], b.arena[:0]
}

func (b *EventBatch) strings() [31]*[]string {
	return [...]*[]string{&b.eventID, &b.site, &b.eventName, &b.source, &b.visitorID, &b.sessionID, &b.email, &b.objectID,
		&b.url, &b.path, &b.referrer, &b.pageTitle, &b.utmSource, &b.utmMedium, &b.utmCampaign, &b.utmTerm, &b.utmContent,
		&b.touchpoint, &b.clickIDParam, &b.clickID, &b.ip, &b.userAgent, &b.language, &b.browser, &b.browserVersion,
		&b.os, &b.osVersion, &b.deviceType, &b.country, &b.region, &b.city}
}

// Encode appends completions as rows. Times outside what DateTime holds
// (1970-01-01 to 2106-02-07) are clamped to its ends, because the driver
// would wrap them silently and one such row must not fail a whole batch.
func (b *EventBatch) Encode(cs []ingest.Completion) {
	need := 0
	for i := range cs {
		need += 2*len(cs[i].Props) + len(cs[i].Truncated)
	}
	if free := cap(b.arena) - len(b.arena); free < need {
		// Growing would move the arena and leave earlier rows pointing at
		// the old array, which is fine (they stay valid) but wasteful; size
		// the new one for this call and later ones alike.
		b.arena = make([]string, 0, 2*(len(b.arena)+need))
	}
	for i := range cs {
		c := &cs[i]
		b.eventID = append(b.eventID, c.EventID)
		b.site = append(b.site, c.Site)
		b.eventName = append(b.eventName, c.EventName)
		occ := clampTime(c.OccurredAt)
		b.occurredAt = append(b.occurredAt, occ)
		b.occurredMs = append(b.occurredMs, uint16(occ.Nanosecond()/int(time.Millisecond)))
		b.receivedAt = append(b.receivedAt, clampTime(c.ReceivedAt))
		b.source = append(b.source, string(c.Source))
		b.visitorID = append(b.visitorID, c.VisitorID)
		b.sessionID = append(b.sessionID, c.SessionID)
		b.email = append(b.email, c.Identity.Email)
		b.objectID = append(b.objectID, c.ObjectID)
		b.url = append(b.url, c.Page.URL)
		b.path = append(b.path, c.Enrichment.Path)
		b.referrer = append(b.referrer, c.Page.Referrer)
		b.pageTitle = append(b.pageTitle, c.Page.Title)
		e := &c.Enrichment
		b.utmSource = append(b.utmSource, e.UTMSource)
		b.utmMedium = append(b.utmMedium, e.UTMMedium)
		b.utmCampaign = append(b.utmCampaign, e.UTMCampaign)
		b.utmTerm = append(b.utmTerm, e.UTMTerm)
		b.utmContent = append(b.utmContent, e.UTMContent)
		b.touchpoint = append(b.touchpoint, e.TouchpointSource)
		b.clickIDParam = append(b.clickIDParam, e.ClickIDParam)
		b.clickID = append(b.clickID, e.ClickID)
		b.ip = append(b.ip, c.Client.IP) // as given: anonymisation happens before the writer
		b.userAgent = append(b.userAgent, c.Client.UserAgent)
		b.language = append(b.language, c.Client.Language)
		b.browser = append(b.browser, e.Browser)
		b.browserVersion = append(b.browserVersion, e.BrowserVersion)
		b.os = append(b.os, e.OS)
		b.osVersion = append(b.osVersion, e.OSVersion)
		b.deviceType = append(b.deviceType, e.DeviceType)
		bot := uint8(0)
		if e.IsBot {
			bot = 1
		}
		b.isBot = append(b.isBot, bot)
		b.country = append(b.country, e.Country)
		b.region = append(b.region, e.Region)
		b.city = append(b.city, e.City)

		start := len(b.arena)
		for _, p := range c.Props {
			b.arena = append(b.arena, p.Name)
		}
		keysEnd := len(b.arena)
		for _, p := range c.Props {
			b.arena = append(b.arena, p.Value)
		}
		valuesEnd := len(b.arena)
		b.arena = append(b.arena, c.Truncated...)
		end := len(b.arena)
		b.propKeys = append(b.propKeys, b.arena[start:keysEnd:keysEnd])
		b.propValues = append(b.propValues, b.arena[keysEnd:valuesEnd:valuesEnd])
		b.truncated = append(b.truncated, b.arena[valuesEnd:end:end])
	}
}

// columns returns the column slices in eventColumns order.
func (b *EventBatch) columns() []any {
	return []any{
		b.eventID, b.site, b.eventName, b.occurredAt, b.occurredMs, b.receivedAt, b.source,
		b.visitorID, b.sessionID, b.email, b.objectID,
		b.url, b.path, b.referrer, b.pageTitle,
		b.utmSource, b.utmMedium, b.utmCampaign, b.utmTerm, b.utmContent,
		b.touchpoint, b.clickIDParam, b.clickID,
		b.ip, b.userAgent, b.language, b.browser, b.browserVersion, b.os, b.osVersion, b.deviceType, b.isBot,
		b.country, b.region, b.city,
		b.propKeys, b.propValues, b.truncated,
	}
}

// DateTime is seconds since the epoch in a UInt32.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Unix(1<<32-1, 999_999_999).UTC()
)

func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC()
}

// RejectionBatch is rejections encoded as the columns of the rejections
// table, in rejectionColumns order.
type RejectionBatch struct {
	at                                     []time.Time
	site, source, eventName, reason, field []string
	payload                                []string
}

// Len is the number of rows in the batch.
func (b *RejectionBatch) Len() int { return len(b.at) }

// Reset empties the batch and keeps its memory.
func (b *RejectionBatch) Reset() {
	b.at = b.at[:0]
	for _, s := range []*[]string{&b.site, &b.source, &b.eventName, &b.reason, &b.field, &b.payload} {
		clear(*s)
		*s = (*s)[:0]
	}
}

// Encode appends rejections as rows; payloads are cut to
// ingest.MaxRejectionPayload bytes (on a UTF-8 boundary) whatever the caller
// did.
func (b *RejectionBatch) Encode(rs []ingest.Rejection) {
	for i := range rs {
		r := &rs[i]
		b.at = append(b.at, clampTime(r.At))
		b.site = append(b.site, r.Site)
		b.source = append(b.source, string(r.Source))
		b.eventName = append(b.eventName, r.EventName)
		b.reason = append(b.reason, r.Reason)
		b.field = append(b.field, r.Field)
		b.payload = append(b.payload, cutUTF8(r.Payload, ingest.MaxRejectionPayload))
	}
}

func (b *RejectionBatch) columns() []any {
	return []any{b.at, b.site, b.source, b.eventName, b.reason, b.field, b.payload}
}

// cutUTF8 returns at most n bytes of s, not splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues the character before it
		n--
	}
	return s[:n]
}

package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
)

// LiveConfig is what the live stream needs from main.
type LiveConfig struct {
	// Matching names the rules whose when holds for a completion; nil
	// names none.
	Matching func(c *ingest.Completion) []string
	// StorageIP is what storage keeps of a client IP (anonymised when
	// privacy.anonymize_ip is on): the stream shows that, never more. Nil
	// shows no IP.
	StorageIP func(ip string) string
}

const (
	// subscriberBuffer is how many frames a watcher may fall behind
	// before it loses some: at 256 a browser tab that stalls for a second
	// at 250 completions a second loses none.
	subscriberBuffer = 256
	// debugKeep is how many completions of browsers in debug mode are kept
	// for the next watcher (about 100 KB at their usual size).
	debugKeep = 200
)

// Live fans accepted completions out to the console's watchers. It is the
// acceptance pipeline's Observe hook and the admin listener's EventStream.
type Live struct {
	cfg      LiveConfig
	watching atomic.Int32

	mu    sync.Mutex
	subs  map[*subscriber]struct{}
	debug []kept // the newest debugKeep debug completions, oldest first
}

// kept is a debug completion's frame, with its identifiers for Forget.
type kept struct {
	frame []byte
	who   ingest.Completion // VisitorID, ObjectID, Identity.Email and ExternalID only
}

type subscriber struct {
	ch      chan []byte
	dropped int // frames lost since the last one delivered
}

// NewLive returns a Live with nobody watching.
func NewLive(cfg LiveConfig) *Live {
	return &Live{cfg: cfg, subs: map[*subscriber]struct{}{}}
}

// Observe offers durable completions to the watchers (ingest's
// PipelineConfig.Observe). It never blocks: a watcher whose buffer is full
// loses the frame.
func (l *Live) Observe(cs []ingest.Completion) {
	watching := l.watching.Load() > 0
	for i := range cs {
		c := &cs[i]
		if !watching && !c.Debug {
			continue
		}
		frame := l.frame(c)
		l.mu.Lock()
		if c.Debug {
			if len(l.debug) == debugKeep {
				l.debug = append(l.debug[:0], l.debug[1:]...)
			}
			l.debug = append(l.debug, kept{frame: frame, who: ingest.Completion{VisitorID: c.VisitorID, ObjectID: c.ObjectID,
				Identity: ingest.Identity{Email: c.Identity.Email, ExternalID: c.Identity.ExternalID}}})
		}
		for s := range l.subs {
			s.offer(frame)
		}
		l.mu.Unlock()
	}
}

// offer sends frame without blocking, preceded by a note of the frames
// lost before it.
func (s *subscriber) offer(frame []byte) {
	if s.dropped > 0 {
		select {
		case s.ch <- []byte(fmt.Sprintf("event: dropped\ndata: %d\n\n", s.dropped)):
			s.dropped = 0
		default:
			s.dropped++
			return
		}
	}
	select {
	case s.ch <- frame:
	default:
		s.dropped++
	}
}

// Subscribe starts a watcher: the debug completions kept so far, then every
// completion accepted from now on. stop ends it.
func (l *Live) Subscribe() (<-chan []byte, func()) {
	s := &subscriber{ch: make(chan []byte, subscriberBuffer)}
	l.mu.Lock()
	for _, k := range l.debug {
		s.offer(k.frame)
	}
	l.subs[s] = struct{}{}
	l.watching.Add(1)
	l.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.subs, s)
			l.watching.Add(-1)
			l.mu.Unlock()
		})
	}
}

// Forget drops the kept debug completions of a person being erased (match
// says whose) and returns how many it dropped; what watchers were already
// sent is theirs.
func (l *Live) Forget(match func(*ingest.Completion) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.debug)
	l.debug = slices.DeleteFunc(l.debug, func(k kept) bool { return match(&k.who) })
	return n - len(l.debug)
}

// Record offers delivery outcomes to the watchers, so the live page shows
// beside a completion what each rule did with it (a rules.DeliveryLog,
// beside the deliveries table's writer). Like Observe it never blocks and
// costs one atomic load while nobody watches.
func (l *Live) Record(ds []store.Delivery) {
	if l.watching.Load() == 0 {
		return
	}
	for i := range ds {
		d := &ds[i]
		data, _ := json.Marshal(Outcome{EventID: d.EventID, Rule: d.Rule, Destination: d.Destination, Status: d.Status,
			HTTPStatus: d.HTTPStatus, TraceID: d.TraceID, Message: d.Message})
		frame := append(append([]byte("event: delivery\ndata: "), data...), "\n\n"...)
		l.mu.Lock()
		for s := range l.subs {
			s.offer(frame)
		}
		l.mu.Unlock()
	}
}

// Outcome is one delivery outcome as the live page shows it.
type Outcome struct {
	EventID     string `json:"event_id"`
	Rule        string `json:"rule"`
	Destination string `json:"destination"`
	Status      string `json:"status"`
	HTTPStatus  int    `json:"http_status,omitempty"`
	TraceID     string `json:"trace_id,omitempty"`
	Message     string `json:"message,omitempty"`
}

// Entry is one completion as the console shows it: every stored field,
// under the events table's column names, plus the rules it matched and the
// visitor's consent.
type Entry struct {
	EventID          string            `json:"event_id"`
	Site             string            `json:"site"`
	EventName        string            `json:"event_name"`
	OccurredAt       time.Time         `json:"occurred_at"`
	ReceivedAt       time.Time         `json:"received_at"`
	Source           string            `json:"source"`
	VisitorID        string            `json:"visitor_id"`
	SessionID        string            `json:"session_id"`
	Email            string            `json:"email"`
	ObjectID         string            `json:"object_id"`
	URL              string            `json:"url"`
	Path             string            `json:"path"`
	Referrer         string            `json:"referrer"`
	PageTitle        string            `json:"page_title"`
	UTMSource        string            `json:"utm_source"`
	UTMMedium        string            `json:"utm_medium"`
	UTMCampaign      string            `json:"utm_campaign"`
	UTMTerm          string            `json:"utm_term"`
	UTMContent       string            `json:"utm_content"`
	TouchpointSource string            `json:"touchpoint_source"`
	ClickIDParam     string            `json:"click_id_param"`
	ClickID          string            `json:"click_id"`
	IP               string            `json:"ip"`
	UserAgent        string            `json:"user_agent"`
	Language         string            `json:"language"`
	Browser          string            `json:"browser"`
	BrowserVersion   string            `json:"browser_version"`
	OS               string            `json:"os"`
	OSVersion        string            `json:"os_version"`
	DeviceType       string            `json:"device_type"`
	IsBot            bool              `json:"is_bot"`
	Country          string            `json:"country"`
	Region           string            `json:"region"`
	City             string            `json:"city"`
	Props            map[string]string `json:"props"`
	Truncated        []string          `json:"truncated"`
	Debug            bool              `json:"debug"`
	Mirror           []string          `json:"mirror"`
	Consent          ingest.Consent    `json:"consent"`
	Rules            []string          `json:"rules"`
}

// entry copies what the console shows of c (nothing of it is kept).
func (l *Live) entry(c *ingest.Completion) Entry {
	e := Entry{EventID: c.EventID, Site: c.Site, EventName: c.EventName, OccurredAt: c.OccurredAt, ReceivedAt: c.ReceivedAt,
		Source: string(c.Source), VisitorID: c.VisitorID, SessionID: c.SessionID, Email: c.Identity.Email, ObjectID: c.ObjectID,
		URL: c.Page.URL, Referrer: c.Page.Referrer, PageTitle: c.Page.Title, UserAgent: c.Client.UserAgent, Language: c.Client.Language,
		Truncated: c.Truncated, Debug: c.Debug, Mirror: c.Mirror, Consent: c.Consent, Props: make(map[string]string, len(c.Props))}
	en := &c.Enrichment
	e.Path, e.UTMSource, e.UTMMedium, e.UTMCampaign, e.UTMTerm, e.UTMContent = en.Path, en.UTMSource, en.UTMMedium, en.UTMCampaign, en.UTMTerm, en.UTMContent
	e.TouchpointSource, e.ClickIDParam, e.ClickID = en.TouchpointSource, en.ClickIDParam, en.ClickID
	e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.DeviceType, e.IsBot = en.Browser, en.BrowserVersion, en.OS, en.OSVersion, en.DeviceType, en.IsBot
	e.Country, e.Region, e.City = en.Country, en.Region, en.City
	for _, p := range c.Props {
		e.Props[p.Name] = p.Value
	}
	if l.cfg.StorageIP != nil {
		e.IP = l.cfg.StorageIP(c.Client.IP)
	}
	if l.cfg.Matching != nil {
		e.Rules = l.cfg.Matching(c)
	}
	return e
}

// frame renders c as one server-sent event.
func (l *Live) frame(c *ingest.Completion) []byte {
	data, err := json.Marshal(l.entry(c))
	if err != nil { // only plain strings, times and maps: cannot happen
		data = []byte(`{"error":` + fmt.Sprintf("%q", err.Error()) + `}`)
	}
	return append(append([]byte("event: completion\ndata: "), data...), "\n\n"...)
}

package salesforce

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
)

// Statuses a mapping or a send records besides the engine's.
const (
	// StatusSkippedNoContact: the completion's email matches no contact or
	// lead, or it has no email.
	StatusSkippedNoContact = "skipped_no_contact"
	// StatusSkippedTooOld: older than the rule's within_days.
	StatusSkippedTooOld = "skipped_too_old"
)

// ItemName is what the deliveries log calls a Salesforce item.
const ItemName = "Task"

// Record is a Task as tally sends it, less WhoId and the external id (set
// at send time). JSON names are Salesforce's field names.
type Record struct {
	Subject      string `json:"Subject"`
	Description  string `json:"Description,omitempty"`
	ActivityDate string `json:"ActivityDate"`
	Status       string `json:"Status"`
	Priority     string `json:"Priority,omitempty"`
	Type         string `json:"Type,omitempty"`
}

// payload is what the outbox keeps for one task.
type payload struct {
	Email string `json:"email"`
	// Expires is when the task is no longer worth creating.
	Expires time.Time `json:"expires"`
	Task    Record    `json:"task"`
}

// Mapping is a rule's compiled task block.
type Mapping struct {
	task    Task
	subject Template
	labels  map[string]string // event definitions' labels by event name
}

// NewMapping compiles t (which passed Check) for completions of the events
// labelled as labels says (by event name).
func NewMapping(t Task, labels map[string]string) (*Mapping, error) {
	src := t.Subject
	if src == "" {
		src = "{{label}}"
	}
	tpl, err := ParseTemplate(src)
	if err != nil {
		return nil, err
	}
	return &Mapping{task: t, subject: tpl, labels: labels}, nil
}

// outboxHorizon is how long a task without within_days is tried.
const outboxHorizon = deliver.DefaultHorizon

// Map turns c into a task item, or says why it is not sent (status and
// message).
func (m *Mapping) Map(c *ingest.Completion, now time.Time) (deliver.Item, string, string) {
	email := strings.ToLower(strings.TrimSpace(c.Identity.Email))
	if email == "" {
		return deliver.Item{}, StatusSkippedNoContact, "the completion has no email to find a contact by"
	}
	expires := now.Add(outboxHorizon)
	if d := m.task.WithinDays; d > 0 {
		limit := c.OccurredAt.Add(time.Duration(d) * 24 * time.Hour)
		if !now.Before(limit) {
			return deliver.Item{}, StatusSkippedTooOld, fmt.Sprintf("occurred %s, more than within_days %d ago", c.OccurredAt.UTC().Format(time.RFC3339), d)
		}
		expires = limit
	}
	label := m.labels[c.EventName]
	if label == "" {
		label = c.EventName
	}
	value := func(name string) string {
		switch name {
		case "label":
			return label
		case "event":
			return c.EventName
		case "email":
			return email
		case "url":
			return c.Page.URL
		}
		v, _ := c.Prop(name)
		return v
	}
	var desc strings.Builder
	fmt.Fprintf(&desc, "%s (%s) at %s\n", label, c.EventName, c.OccurredAt.UTC().Format(time.RFC3339))
	if c.Page.URL != "" {
		fmt.Fprintf(&desc, "url: %s\n", c.Page.URL)
	}
	for _, p := range c.Props {
		fmt.Fprintf(&desc, "%s: %s\n", p.Name, p.Value)
	}
	rec := Record{
		Subject:      cut(m.subject.Render(value), MaxSubject),
		Description:  cut(strings.TrimRight(desc.String(), "\n"), MaxDescription),
		ActivityDate: c.OccurredAt.UTC().Format(time.DateOnly),
		Status:       "Completed",
		Priority:     m.task.Priority,
		Type:         m.task.Type,
	}
	b, err := json.Marshal(payload{Email: email, Expires: expires.UTC(), Task: rec})
	if err != nil {
		return deliver.Item{}, deliver.StatusFailed, err.Error()
	}
	return deliver.Item{ID: c.EventID, Name: ItemName, Time: c.OccurredAt, Payload: b}, "", ""
}

// Horizon is how long after its time an item is tried: until its payload's
// expiry.
func Horizon(it deliver.Item) time.Duration {
	var p payload
	if json.Unmarshal(it.Payload, &p) != nil || p.Expires.IsZero() {
		return outboxHorizon
	}
	return p.Expires.Sub(it.Time)
}

// cut shortens s to at most n characters as Salesforce counts them (UTF-16
// code units), never splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	units := 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1
		}
		if units+w > n {
			return s[:i]
		}
		units += w
	}
	return s
}

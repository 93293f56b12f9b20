package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tally-analytics/tally/rules/deliver"
)

// Destination is a Salesforce org for the delivery engine: batches of up
// to 200 tasks, each tried until its rule's window (or a week) is over.
func Destination(name string, c *Client) deliver.Destination {
	return deliver.Destination{Name: name, Type: Type, Sender: sender{c}, MaxBatch: MaxRecords, Horizon: Horizon}
}

type sender struct{ c *Client }

// Send finds each task's contact or lead, then upserts the tasks that have
// one in a single request.
func (s sender) Send(ctx context.Context, items []deliver.Item) []deliver.Result {
	out := make([]deliver.Result, len(items))
	ps := make([]payload, len(items))
	var emails []string
	seen := map[string]bool{}
	for i, it := range items {
		if err := json.Unmarshal(it.Payload, &ps[i]); err != nil {
			out[i] = deliver.Result{Class: deliver.Drop, Message: "undecodable task: " + err.Error()}
			continue
		}
		if e := ps[i].Email; !seen[e] {
			seen[e] = true
			emails = append(emails, e)
		}
	}
	who, err := s.c.WhoIDs(ctx, emails)
	if err != nil {
		return fail(out, err)
	}
	var (
		records []map[string]any
		idx     []int
	)
	for i, it := range items {
		if out[i].Class == deliver.Drop {
			continue
		}
		id, ok := who[ps[i].Email]
		if !ok {
			out[i] = deliver.Result{Class: deliver.Drop, Status: StatusSkippedNoContact, Message: "no contact or lead has this email"}
			continue
		}
		t := ps[i].Task
		r := map[string]any{s.c.ExternalIDField(): it.ID, "WhoId": id, "Subject": t.Subject, "ActivityDate": t.ActivityDate, "Status": t.Status}
		for k, v := range map[string]string{"Description": t.Description, "Priority": t.Priority, "Type": t.Type} {
			if v != "" {
				r[k] = v
			}
		}
		records = append(records, r)
		idx = append(idx, i)
	}
	if len(records) == 0 {
		return out
	}
	results, err := s.c.UpsertTasks(ctx, records)
	if err != nil {
		for _, i := range idx {
			out[i] = result(err)
		}
		return out
	}
	for j, r := range results {
		answer, _ := json.Marshal(r)
		res := deliver.Result{Class: deliver.Sent, HTTPStatus: 200, TraceID: r.ID, Response: string(answer)}
		if !r.Success {
			res.Class = deliver.Drop
			var msgs []string
			for _, e := range r.Errors {
				msgs = append(msgs, fmt.Sprintf("%s: %s %v", e.StatusCode, e.Message, e.Fields))
				if e.StatusCode == "UNABLE_TO_LOCK_ROW" {
					res.Class = deliver.Retry
				}
			}
			res.Message = strings.Join(msgs, "; ")
		} else if !r.Created {
			res.Message = "updated the task an earlier attempt created"
		}
		out[idx[j]] = res
	}
	return out
}

// fail gives every item not already settled err's Result.
func fail(out []deliver.Result, err error) []deliver.Result {
	r := result(err)
	for i := range out {
		if out[i].Class != deliver.Drop {
			out[i] = r
		}
	}
	return out
}

func result(err error) deliver.Result {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Message: err.Error(), network: true}
	}
	return deliver.Result{Class: e.Class(), HTTPStatus: e.HTTPStatus, Message: e.Error(), Response: e.Body, RetryAfter: e.RetryAfter}
}

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// The API bodies the load sends are HubSpot batches: valid JSON, one input
// per completion, each with its own uuid.
func TestAPIBodies(t *testing.T) {
	o := options{base: "http://127.0.0.1:1", path: "api", event: `viewed"car`, token: "t"}
	req, err := o.request(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Inputs []struct {
			EventName, Email, UUID string
			OccurredAt             int64
			Properties             map[string]string
		}
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if len(body.Inputs) != 3 {
		t.Fatalf("inputs = %d; want 3", len(body.Inputs))
	}
	seen := map[string]bool{}
	for _, in := range body.Inputs {
		if in.EventName != `viewed"car` || !strings.HasSuffix(in.Email, "@example.com") || in.OccurredAt == 0 || in.Properties["make"] == "" || seen[in.UUID] {
			t.Errorf("input %+v", in)
		}
		seen[in.UUID] = true
	}
}

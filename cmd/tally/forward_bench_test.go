package main

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkForwardLatency measures the time from a completion's 204 to its
// arrival at the Graph API stand-in, under a steady 200 completions/s over
// the API, with the forwarder's default settings (1 s linger, batches of up
// to 1,000). Run: go test ./cmd/tally -run '^$' -bench ForwardLatency -benchtime 1x
func BenchmarkForwardLatency(b *testing.B) {
	const (
		total = 2000
		every = 5 * time.Millisecond // 200 completions/s
	)
	graph := capitestServer(b)
	raw := &rawBodies{}
	front := httptest.NewServer(raw.wrap(graph))
	b.Cleanup(front.Close)
	yaml := serveYAML + `  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
destinations:
  - {name: meta, type: meta_capi, pixel_id: "1234567890", access_token: ` + graphToken + `, graph_url: ` + front.URL + `}
rules:
  - name: leads
    when: {event: form_submitted}
    forward: {to: meta, event_name: Lead, share: [email, user_agent]}
`
	ts := startTestServer(b, yaml, serverOptions{})
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	for b.Loop() {
		accepted := make(map[string]time.Time, total)
		tick := time.NewTicker(every)
		for i := 0; i < total; i++ {
			<-tick.C
			id := fmt.Sprintf("lat-%d-%d", b.N, i)
			code, body := ts.post(b, "/events/v3/send", `{"eventName":"form_submitted","email":"a@example.com","uuid":"`+id+
				`","properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c","hs_user_agent":"`+ua+`"}}`)
			if code != 204 {
				b.Fatalf("send: %d %s", code, body)
			}
			accepted[id] = time.Now()
		}
		tick.Stop()
		deadline := time.Now().Add(30 * time.Second)
		var lat []time.Duration
		for {
			arrived := raw.arrivals()
			lat = lat[:0]
			for id, t0 := range accepted {
				if t1, ok := arrived[id]; ok {
					lat = append(lat, max(0, t1.Sub(t0)))
				}
			}
			if len(lat) == total || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(lat) != total {
			b.Fatalf("%d of %d forwards arrived", len(lat), total)
		}
		slices.Sort(lat)
		p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
		b.ReportMetric(p(0.5), "p50-ms")
		b.ReportMetric(p(0.99), "p99-ms")
		b.ReportMetric(p(1), "max-ms")
		b.Logf("forward latency over %d completions at %v intervals: p50 %.0f ms, p99 %.0f ms, max %.0f ms; %d requests to Meta",
			total, every, p(0.5), p(0.99), p(1), len(graph.Requests()))
	}
}

// Command tally-load sends a bounded load of completions to a tally server
// on this machine and prints throughput and latency. It refuses any target
// that is not a loopback address: it is a measuring tool, not a traffic
// generator for other hosts.
//
//	tally-load -url http://127.0.0.1:8080 -token T -event viewed_car -n 200000 -batch 100 -c 8
//	tally-load -path browser -site demo -url http://127.0.0.1:8080 -n 50000
//	tally-load -compare clickhouse://127.0.0.1:PORT -metrics http://127.0.0.1:9090/metrics -pid $(pgrep -f "tally serve") -c 64
//
// All requests come from one address, so for the browser path set
// collector.rate_limit_per_minute: -1 in the config of the tally under
// test, or most requests are answered 429.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

func main() {
	serveNoopIfAsked()
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tally-load:", err)
		os.Exit(1)
	}
}

type options struct {
	base, path, token, event, site string
	metrics                        string
	server                         string // what -pid names in the output; "tally" when empty
	n, batch, conc, pid            int
	maxTime                        time.Duration
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("tally-load", flag.ContinueOnError)
	fs.StringVar(&o.base, "url", "http://127.0.0.1:8080", "tally's base URL (loopback only)")
	fs.StringVar(&o.path, "path", "api", "api (POST /events/v3/send/batch) or browser (POST /e)")
	fs.StringVar(&o.token, "token", os.Getenv("TALLY_TOKEN_CRM"), "API bearer token (api path)")
	fs.StringVar(&o.event, "event", "viewed_car", "event name to send")
	fs.StringVar(&o.site, "site", "demo", "site id (browser path)")
	fs.IntVar(&o.n, "n", 100000, "completions to send in all")
	fs.IntVar(&o.batch, "batch", 100, "completions per request")
	fs.IntVar(&o.conc, "c", 8, "concurrent requests")
	fs.DurationVar(&o.maxTime, "max-time", 2*time.Minute, "stop after this long even if -n is not reached")
	fs.IntVar(&o.pid, "pid", 0, "process id of the tally under test: print its peak resident memory (VmHWM) and the CPU time it used during each load")
	fs.StringVar(&o.metrics, "metrics", "", "URL of the tally's /metrics (on its admin listener): with -compare, wait before each measurement until it has stored every completion it accepted")
	compareDSN := fs.String("compare", "", "ClickHouse DSN of the tally under test: measure no-op fiber vs tally single requests and raw inserts vs tally batches of 500, in one run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(o.base)
	if err != nil {
		return fmt.Errorf("parse -url: %w", err)
	}
	if err := requireLoopback(u.Hostname()); err != nil {
		return err
	}
	if o.batch < 1 || o.conc < 1 || o.n < 1 {
		return errors.New("-n, -batch and -c must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.maxTime)
	defer cancel()
	if *compareDSN != "" {
		return compare(ctx, o, *compareDSN, out)
	}
	_, err = load(ctx, o, out)
	return err
}

// result is what one load run measured.
type result struct {
	completionsPerSec, requestsPerSec float64
}

func requireLoopback(host string) error {
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not a loopback address; tally-load only measures a server on this machine", host, ip)
		}
	}
	return nil
}

func load(ctx context.Context, o options, out io.Writer) (result, error) {
	requests := (o.n + o.batch - 1) / o.batch
	var next atomic.Int64
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, requests)
	statuses := map[int]int{}
	var sent atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conc}, Timeout: 30 * time.Second}
	var cpu0 time.Duration
	if o.pid > 0 {
		if err := resetPeakRSS(o.pid); err != nil {
			return result{}, err
		}
		var err error
		if cpu0, err = cpuTime(o.pid); err != nil {
			return result{}, err
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				size := min(o.batch, o.n-i*o.batch)
				req, err := o.request(ctx, size)
				if err != nil {
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				code := -1
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				statuses[code]++
				latencies = append(latencies, d)
				mu.Unlock()
				if code >= 200 && code < 300 {
					sent.Add(int64(size))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	fmt.Fprintf(out, "path=%s batch=%d concurrency=%d\n", o.path, o.batch, o.conc)
	fmt.Fprintf(out, "accepted %d completions in %d requests over %.2fs: %.0f completions/s, %.0f requests/s\n",
		sent.Load(), len(latencies), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), float64(len(latencies))/elapsed.Seconds())
	fmt.Fprintf(out, "request latency: p50 %v  p90 %v  p99 %v  max %v\n",
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	if o.pid > 0 {
		peak, err := peakRSS(o.pid)
		if err != nil {
			return result{}, err
		}
		cpu1, err := cpuTime(o.pid)
		if err != nil {
			return result{}, err
		}
		server := o.server
		if server == "" {
			server = "tally"
		}
		fmt.Fprintf(out, "%s (pid %d) during the load: peak RSS %.1f MB; CPU %.2f s, %.1f µs per accepted completion\n",
			server, o.pid, float64(peak)/1e6, (cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Microseconds())/float64(max(sent.Load(), 1)))
	}
	codes := make([]int, 0, len(statuses))
	for c := range statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		label := fmt.Sprint(c)
		if c == -1 {
			label = "network error"
		}
		fmt.Fprintf(out, "  status %s: %d\n", label, statuses[c])
	}
	return result{completionsPerSec: float64(sent.Load()) / elapsed.Seconds(), requestsPerSec: float64(len(latencies)) / elapsed.Seconds()}, nil
}

// request builds one batch with fresh event ids and a spread of property
// values, so nothing is deduplicated and user agents and URLs vary.
func (o options) request(ctx context.Context, size int) (*http.Request, error) {
	var body []byte
	var err error
	makes := []string{"volvo", "saab", "audi", "fiat", "kia"}
	now := time.Now()
	switch o.path {
	case "api":
		// Written by hand rather than by json.Marshal of maps: at batches
		// of 500 the marshalling took a large share of the machine the
		// server under test runs on.
		name, _ := json.Marshal(o.event)
		b := make([]byte, 0, 64+size*200)
		b = append(b, `{"inputs":[`...)
		for i := range size {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"eventName":`...)
			b = append(b, name...)
			b = append(b, `,"email":"load`...)
			b = strconv.AppendInt(b, int64(i%997), 10)
			b = append(b, `@example.com","uuid":"`...)
			b = append(b, uuid.NewString()...)
			b = append(b, `","occurredAt":`...)
			b = strconv.AppendInt(b, now.UnixMilli(), 10)
			b = append(b, `,"properties":{"make":"`...)
			b = append(b, makes[i%len(makes)]...)
			b = append(b, `","year":"`...)
			b = strconv.AppendInt(b, int64(2000+i%25), 10)
			b = append(b, `"}}`...)
		}
		body = append(b, `]}`...)
	case "browser":
		events := make([]map[string]any, size)
		for i := range events {
			events[i] = map[string]any{
				"id": uuid.NewString(), "name": o.event, "ts": now.UnixMilli(),
				"url": fmt.Sprintf("http://127.0.0.1/cars/%d?utm_source=load", i), "title": "Car",
				"props": map[string]any{"make": makes[i%len(makes)], "year": 2000 + i%25},
			}
		}
		body, err = json.Marshal(map[string]any{"site": o.site, "events": events})
	default:
		return nil, fmt.Errorf("-path must be api or browser, not %q", o.path)
	}
	if err != nil {
		return nil, err
	}
	path := "/events/v3/send/batch"
	if o.path == "browser" {
		path = "/e"
	}
	req, err := http.NewRequestWithContext(ctx, "POST", o.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if o.path == "api" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+o.token)
	} else {
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "http://127.0.0.1")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	}
	return req, nil
}

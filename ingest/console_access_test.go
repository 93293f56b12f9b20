package ingest

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeStream is an EventStream whose frames the test sends.
type fakeStream struct {
	frames  chan []byte
	stopped chan struct{}
}

func (f *fakeStream) Subscribe() (<-chan []byte, func()) {
	return f.frames, func() { close(f.stopped) }
}

func consoleAdmin(stream EventStream) *Admin {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("console page " + r.URL.Path)) })
	return NewAdmin(AdminConfig{Console: page, ConsoleStream: stream, Tokens: []Token{
		{Name: "ops", Token: "console-secret", Scopes: []string{ScopeConsole}},
		{Name: "crm", Token: "send-secret"},
	}})
}

// From another host the console needs a token with the console scope; one
// given as ?token= becomes a cookie for /console and leaves the address.
func TestConsoleNeedsATokenOffLoopback(t *testing.T) {
	a := consoleAdmin(nil)
	do := func(path, auth, cookie string) (*http.Response, string) {
		req := httptest.NewRequest("GET", path, nil) // app.Test's client is 0.0.0.0, not loopback
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if cookie != "" {
			req.Header.Set("Cookie", consoleCookie+"="+cookie)
		}
		resp, err := a.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp.Body)
	}
	for _, tt := range []struct {
		name, path, auth, cookie string
		want                     int
	}{
		{"no token", "/console", "", "", 401},
		{"a token without the console scope", "/console/rules", "send-secret", "", 401},
		{"a console token", "/console/rules", "console-secret", "", 200},
		{"the console cookie", "/console/events", "", "console-secret", 200},
		{"a wrong cookie", "/console/events", "", "send-secret", 401},
		{"a wrong ?token=", "/console?token=send-secret", "", "", 401},
	} {
		resp, body := do(tt.path, tt.auth, tt.cookie)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: GET %s = %d %q; want %d", tt.name, tt.path, resp.StatusCode, body, tt.want)
		}
		if tt.want == 200 && body != "console page "+strings.Split(tt.path, "?")[0] {
			t.Errorf("%s: body %q; want the console's page", tt.name, body)
		}
	}
	resp, _ := do("/console/dedup?token=console-secret&rule=leads", "", "")
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/dedup?rule=leads" ||
		!strings.Contains(cookie, consoleCookie+"=console-secret") || !strings.Contains(strings.ToLower(cookie), "httponly") {
		t.Errorf("?token= answered %d, Location %q, Set-Cookie %q; want 303 to /console/dedup?rule=leads with an HttpOnly cookie",
			resp.StatusCode, resp.Header.Get("Location"), cookie)
	}
}

// On loopback the console needs no token, and the live stream is written
// frame by frame as server-sent events until the listener shuts down.
func TestConsoleStreamOnLoopback(t *testing.T) {
	stream := &fakeStream{frames: make(chan []byte, 1), stopped: make(chan struct{})}
	a := consoleAdmin(stream)
	base := "http://" + serveOnLoopback(t, a.App())
	resp, err := http.Get(base + "/console")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); resp.StatusCode != 200 || body != "console page /console" {
		t.Errorf("GET /console on loopback = %d %q; want 200 and the page", resp.StatusCode, body)
	}

	resp, err = http.Get(base + "/console/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream Content-Type %q; want text/event-stream", ct)
	}
	r := bufio.NewReader(resp.Body)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		return s
	}
	if l := line(); l != "retry: 1000\n" {
		t.Errorf("stream begins %q; want the retry hint", l)
	}
	line()
	stream.frames <- []byte("event: completion\ndata: {}\n\n")
	if l := line(); l != "event: completion\n" {
		t.Errorf("stream then %q; want the frame, written at once", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a stream open: %v", err)
	}
	select {
	case <-stream.stopped:
	case <-ctx.Done():
		t.Error("the stream's subscription was not stopped by Shutdown")
	}
	// A second Shutdown (a stop sequence retried) is harmless.
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// Go's profiles on the admin listener answer another host only with a
// console token, as the console does.
func TestProfilesNeedATokenOffLoopback(t *testing.T) {
	a := consoleAdmin(nil)
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", 401},
		{"a token without the console scope", "send-secret", 401},
		{"a console token", "console-secret", 200},
	} {
		req := httptest.NewRequest("GET", "/debug/pprof/cmdline", nil) // app.Test's client is 0.0.0.0, not loopback
		if tt.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tt.auth)
		}
		resp, err := a.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp.Body); resp.StatusCode != tt.want {
			t.Errorf("%s: GET /debug/pprof/cmdline = %d %q; want %d", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	resp, err := http.Get("http://" + serveOnLoopback(t, a.App()) + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); resp.StatusCode != 200 || body == "" {
		t.Errorf("GET /debug/pprof/cmdline on loopback = %d %q; want 200 and the command line", resp.StatusCode, body)
	}
}

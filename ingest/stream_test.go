package ingest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// paddedBatch is a send/batch body of n completions, each with a property
// of pad bytes, so it can be made longer than what fasthttp reads with the
// headers.
func paddedBatch(n, pad int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"eventName":"viewed_car","utk":"a","uuid":"s-%d","properties":{"referrer_note":%q}}`, i, strings.Repeat("x", pad))
	}
	return `{"inputs":[` + strings.Join(items, ",") + `]}`
}

// Bodies are read by the handlers, after admission (the collector streams
// them): a long body is read whole whether its length is announced or it
// comes in chunks, the connection then serves the next request, and a
// chunked body past the limit is refused.
func TestStreamedBodies(t *testing.T) {
	h := newAPIHarness(t)
	addr := serveOnLoopback(t, h.c.App())
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	post := func(body io.Reader, length int64) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+addr+"/events/v3/send/batch", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length // -1: chunked
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	long := paddedBatch(100, 200) // ~25 KB, past the 8 KiB read with the headers
	for i, length := range []int64{int64(len(long)), -1, int64(len(long))} {
		body := io.Reader(strings.NewReader(long))
		if length < 0 {
			body = io.MultiReader(strings.NewReader(long)) // not a *strings.Reader: sent chunked
		}
		if code, b := post(body, length); code != 204 {
			t.Fatalf("request %d (Content-Length %d): %d %s; want 204", i, length, code, b)
		}
	}
	if n := len(h.sink.got); n != 100 {
		t.Errorf("stored %d completions; want 100 (three sends of the same 100 ids)", n)
	}
	pr, pw := io.Pipe()
	go func() {
		chunk := []byte(strings.Repeat(" ", 64<<10))
		for sent := 0; sent <= apiBody; sent += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return // the server closed the connection: what the test wants
			}
		}
		pw.Close()
	}()
	if code, b := post(pr, -1); code != 413 || !strings.Contains(b, "limit") {
		t.Errorf("chunked body past the limit: %d %s; want 413 naming the limit", code, b)
	}
}

// An answer given without reading the body (here a missing token) closes
// the connection when the body was longer than what comes with the
// headers, since the rest is still on the connection; a short body's
// connection stays open for the next request.
func TestUnreadBodyClosesConnection(t *testing.T) {
	h := newAPIHarness(t)
	addr := serveOnLoopback(t, h.c.App())
	for _, tt := range []struct {
		size  int
		close bool
	}{{100, false}, {prefetchedBody, false}, {prefetchedBody + 1, true}, {200 << 10, true}} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("x", tt.size)
		r := bufio.NewReader(conn)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go fmt.Fprintf(conn, "POST /events/v3/send/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%d-byte body: %v", tt.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Close != tt.close {
			t.Errorf("%d-byte body: status %d, connection closed %v; want 401, %v", tt.size, resp.StatusCode, resp.Close, tt.close)
		}
		if !tt.close {
			// The connection reads the next request.
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 200 {
				t.Errorf("%d-byte body: the next request on the connection: %v %v; want 200", tt.size, resp, err)
			}
		}
		conn.Close()
	}
}

// A client that announces a large body and sends it slowly gives its
// admission back after admittedBodyWait: the requests behind it are
// served meanwhile, and its own body is still taken once it has come.
func TestSlowBodyDoesNotHoldAdmission(t *testing.T) {
	h := newAPIHarness(t)
	addr := serveOnLoopback(t, h.c.App())
	slow := paddedBatch(500, 1000)
	slow += strings.Repeat(" ", maxBodiesInFlight-len(slow)) // the whole admission allowance
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(conn, "POST /events/v3/send/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		testToken, len(slow), slow[:20<<10])
	time.Sleep(200 * time.Millisecond) // its handler runs and takes the allowance

	client := &http.Client{Timeout: 10 * time.Second} // the slow body would hold it for 30 s
	req, _ := http.NewRequest("POST", "http://"+addr+"/events/v3/send", strings.NewReader(`{"eventName":"viewed_car","utk":"b","uuid":"behind","properties":{}}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("a request behind the slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("a request behind the slow body: %d; want 204", resp.StatusCode)
	}

	if _, err := io.WriteString(conn, slow[20<<10:]); err != nil {
		t.Fatal(err)
	}
	sresp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	if sresp.StatusCode != 204 {
		t.Errorf("the slow body once sent: %d %s; want 204", sresp.StatusCode, sb)
	}
	if n := len(h.sink.got); n != 501 {
		t.Errorf("stored %d completions; want 501", n)
	}
}

package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for tally-load when startNoop
// runs it as the no-op server.
func TestMain(m *testing.M) {
	serveNoopIfAsked()
	os.Exit(m.Run())
}

// The no-op server -compare measures against is a process of its own that
// answers 204, and stopping it closes its port.
func TestNoopServerRunsInItsOwnProcess(t *testing.T) {
	srv, err := startNoop(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if srv.pid() == os.Getpid() || srv.pid() <= 0 {
		t.Fatalf("no-op server pid = %d; want a child of %d", srv.pid(), os.Getpid())
	}
	if _, err := cpuTime(srv.pid()); err != nil {
		t.Fatalf("CPU time of the no-op server: %v", err)
	}
	resp, err := http.Post("http://"+srv.addr+"/events/v3/send/batch", "application/json", strings.NewReader(`{"inputs":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d; want 204", resp.StatusCode)
	}
	srv.stop()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Post("http://"+srv.addr+"/", "text/plain", nil); err == nil {
		resp.Body.Close()
		t.Fatalf("the no-op server still answers %d after stop", resp.StatusCode)
	}
}

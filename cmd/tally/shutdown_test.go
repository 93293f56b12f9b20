package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tally-analytics/tally/store/chtest"
)

// TestServeDrainsOnShutdown runs the serve command itself and stops it the
// way SIGTERM does (its context ends): completions accepted just before must
// be in ClickHouse when the command returns, and it must exit 0.
func TestServeDrainsOnShutdown(t *testing.T) {
	dsn := chtest.DSN(t)
	db := chtest.Database(t, dsn)
	cfgPath := filepath.Join(t.TempDir(), "tally.yaml")
	yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: %q}\n", t.TempDir(), dsn, db) + serveYAML
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logR, logW := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "-config", cfgPath}, io.Discard, logW)
		logW.Close()
	}()
	// The JSON log says where it listens.
	addr := ""
	sc := bufio.NewScanner(logR)
	for addr == "" && sc.Scan() {
		var line struct{ Msg, Addr, Admin, Console string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tally is serving" {
			addr = line.Addr
			if line.Console != line.Admin+"/console" || line.Admin == "" {
				t.Errorf("serving line names the console %q; want the admin address %q + /console", line.Console, line.Admin)
			}
		}
	}
	if addr == "" {
		t.Fatalf("serve never said it was serving (exit %v)", <-exit)
	}
	go io.Copy(io.Discard, logR)

	ts := &testServer{url: addr}
	code, body := ts.post(t, "/events/v3/send/batch", `{"inputs":[
		{"eventName":"viewed_car","utk":"v","uuid":"s-1","properties":{"make":"a"}},
		{"eventName":"viewed_car","utk":"v","uuid":"s-2","properties":{"make":"b"}},
		{"eventName":"viewed_car","utk":"v","uuid":"s-3","properties":{"make":"c"}}]}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	stop() // as SIGTERM does
	select {
	case c := <-exit:
		if c != 0 {
			t.Fatalf("serve exited %d; want 0", c)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("serve did not stop within its shutdown deadline")
	}
	conn := chtest.Open(t, dsn)
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM `"+db+"`.events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("rows after shutdown = %d; want the 3 accepted just before it", n)
	}
}

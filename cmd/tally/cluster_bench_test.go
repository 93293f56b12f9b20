package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chserver"
	"github.com/tally-analytics/tally/store/chtest"
)

// BenchmarkCollectors compares, in one run on this machine, one collector
// against one ClickHouse server with two collectors against a two-replica
// cluster: acknowledged completions per second over the API (batches of
// 100, 8 concurrent requests in all), and the time until ClickHouse holds
// them all. Everything shares this machine's cores, so the cluster's
// figures show the cost of replication and of a second collector on the
// same CPUs, not a scale-out. Run:
//
//	go test ./cmd/tally -run '^$' -bench Collectors -benchtime 1x -v
func BenchmarkCollectors(b *testing.B) {
	const total = 300_000
	for b.Loop() {
		// One collector, one server.
		dir := b.TempDir()
		ch, err := chserver.Start(context.Background(), chserver.Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		single := benchCollectors(b, []string{ch.DSN()}, "", total)
		ch.Stop(context.Background())

		// Two collectors, a two-replica cluster.
		cl := chtest.StartCluster(b, 2)
		dsns := []string{
			cl.DSN(0) + "," + strings.TrimPrefix(cl.DSN(1), "clickhouse://"),
			cl.DSN(1) + "," + strings.TrimPrefix(cl.DSN(0), "clickhouse://"),
		}
		cluster := benchCollectors(b, dsns, cl.Name, total)
		b.Logf("one collector, one server:       %s", single)
		b.Logf("two collectors, 2-replica cluster: %s", cluster)
	}
}

func benchCollectors(b *testing.B, dsns []string, cluster string, total int) string {
	graph := capitestServer(b)
	var children []*child
	for _, dsn := range dsns {
		dir := b.TempDir()
		cfg := filepath.Join(dir, "tally.yaml")
		c := ""
		if cluster != "" {
			c = ", cluster: " + cluster
		}
		yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: bench%s}\n", filepath.Join(dir, "data"), dsn, c) +
			leadsYAML(graph.URL(), "", "", "")
		os.WriteFile(cfg, []byte(yaml), 0o644)
		children = append(children, startChild(b, cfg))
	}
	l := newLoader()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	per := 8 / len(children)
	for i, c := range children {
		wg.Add(1)
		go func() { defer wg.Done(); l.run(ctx, c.addr, fmt.Sprintf("c%d", i), per, 100) }()
	}
	for {
		l.mu.Lock()
		n := len(l.acked)
		l.mu.Unlock()
		if n >= total {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	accepted := time.Since(start)
	conn, err := store.Open(context.Background(), strings.Split(dsns[0], ",")[0])
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for {
		var n uint64
		conn.QueryRow(context.Background(), "SELECT count() FROM bench.events").Scan(&n)
		if int(n) >= len(l.acked) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stored := time.Since(start)
	for _, c := range children {
		c.kill(b)
	}
	return fmt.Sprintf("%d acknowledged in %.2fs (%.0f/s); all in ClickHouse after %.2fs (%.0f/s)",
		len(l.acked), accepted.Seconds(), float64(len(l.acked))/accepted.Seconds(), stored.Seconds(), float64(len(l.acked))/stored.Seconds())
}

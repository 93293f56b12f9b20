package store

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/chtest"
)

// TestClusterSchema migrates a two-replica cluster from one replica, then
// checks that the other has every table, that a view replaced by a second
// migration is never missing, and that rows written through one replica's
// Distributed events are read through the other's.
func TestClusterSchema(t *testing.T) {
	c := chtest.StartCluster(t, 2)
	ctx := context.Background()
	a, err := OpenOn(ctx, c.DSN(0), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, c.DSN(1))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := MigrateOn(ctx, a, "tally", c.Name); err != nil {
		t.Fatalf("MigrateOn: %v", err)
	}
	if err := MigrateOn(ctx, b, "tally", c.Name); err != nil { // a second collector: a no-op
		t.Fatalf("MigrateOn again from the other replica: %v", err)
	}
	def := sampleDefinition()
	if err := SyncViewsOn(ctx, a, "tally", c.Name, []ingest.Definition{def}); err != nil {
		t.Fatalf("SyncViewsOn: %v", err)
	}
	tables := func(conn Conn) string {
		rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = 'tally' ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n, e string
			rows.Scan(&n, &e)
			out = append(out, n+":"+e)
		}
		return strings.Join(out, " ")
	}
	// Every table of the schema, and the two typed views, on the other
	// replica: Distributed ones over Replicated locals, the rest Replicated.
	var want []string
	for _, nk := range schemaTables(c.Name, "tally") {
		name, engine, _ := strings.Cut(nk, ":")
		if engine == "" {
			engine = "Replicated"
			if _, ok := distributedTables[name]; ok {
				engine = "Distributed"
			}
		}
		want = append(want, name+":"+engine)
	}
	want = append(want, "event_page_view:View", "event_viewed_car:View")
	slices.Sort(want)
	var got []string
	for _, te := range strings.Fields(tables(b)) {
		name, engine, _ := strings.Cut(te, ":")
		if strings.HasPrefix(engine, "Replicated") {
			engine = "Replicated"
		}
		got = append(got, name+":"+engine)
	}
	if !slices.Equal(got, want) {
		t.Errorf("tables on the other replica:\n got %s\nwant %s", got, want)
	}

	cs := []ingest.Completion{fullCompletion(1, time.Now().UTC()), fullCompletion(2, time.Now().UTC())}
	var batch EventBatch
	batch.Encode(cs)
	if err := NewInserter(a, "tally").InsertEvents(ctx, &batch); err != nil {
		t.Fatalf("insert through Distributed: %v", err)
	}
	// Replication is asynchronous: the other replica has the rows soon.
	var n uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := b.QueryRow(ctx, "SELECT count() FROM tally.event_viewed_car").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 2 || time.Now().After(deadline) {
			break
		}
	}
	if n != 2 {
		t.Errorf("rows read through the other replica's view = %d; want 2", n)
	}

	// A changed definition replaces the view; it answers throughout.
	stop := make(chan struct{})
	missing := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				missing <- nil
				return
			default:
			}
			if err := b.QueryRow(ctx, "SELECT count() FROM tally.event_viewed_car").Scan(&n); err != nil {
				missing <- err
				return
			}
		}
	}()
	def.Properties = def.Properties[:1]
	if err := SyncViewsOn(ctx, a, "tally", c.Name, []ingest.Definition{def}); err != nil {
		t.Fatalf("SyncViewsOn with a changed definition: %v", err)
	}
	close(stop)
	if err := <-missing; err != nil {
		t.Errorf("the view was missing while it was replaced: %v", err)
	}
}

// TestSchemaLockOneAtATime takes the schema lock from two replicas of a
// cluster at once: the second waits until the first releases it.
func TestSchemaLockOneAtATime(t *testing.T) {
	c := chtest.StartCluster(t, 2)
	ctx := context.Background()
	conns := make([]Conn, 2)
	for i := range conns {
		conn, err := Open(ctx, c.DSN(i))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	release, err := LockSchema(ctx, conns[0], "tally", c.Name, nil)
	if err != nil {
		t.Fatalf("first LockSchema: %v", err)
	}
	got := make(chan time.Time, 1)
	go func() {
		r, err := LockSchema(ctx, conns[1], "tally", c.Name, nil)
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		r()
	}()
	time.Sleep(2 * time.Second)
	released := time.Now()
	release()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Errorf("the second collector took the lock %v before the first released it", released.Sub(at))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second collector never got the lock")
	}
}

// The lock works the same on one server.
func TestSchemaLockSingleServer(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	release, err := LockSchema(ctx, conn, db, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := LockSchema(wctx, conn, db, "", nil); err == nil {
		t.Fatal("a second LockSchema got the lock while it was held")
	}
	release()
	r2, err := LockSchema(ctx, conn, db, "", nil)
	if err != nil {
		t.Fatalf("LockSchema after release: %v", err)
	}
	r2()
}

// Two collectors sharing rule_state see the same enabled-at times; a
// removed rule is forgotten, and enabling it again records a new time.
func TestRuleStatesShared(t *testing.T) {
	conn, db := migrated(t)
	a, b := NewRuleStates(context.Background(), conn, db), NewRuleStates(context.Background(), conn, db)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	if err := a.Save(map[string]RuleState{"leads": {Hash: "h1", EnabledAt: t0}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if s := got["leads"]; s.Hash != "h1" || !s.EnabledAt.Equal(t0) {
		t.Errorf("other collector loads %+v; want h1 at %v", s, t0)
	}
	if err := b.Save(map[string]RuleState{}); err != nil { // the rule was removed
		t.Fatal(err)
	}
	if got, _ := a.Load(); len(got) != 0 {
		t.Errorf("after removal Load = %v; want nothing", got)
	}
	t1 := t0.Add(time.Hour)
	if err := a.Save(map[string]RuleState{"leads": {Hash: "h1", EnabledAt: t1}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Load(); !got["leads"].EnabledAt.Equal(t1) {
		t.Errorf("re-enabled rule loads %v; want the new time %v", got["leads"].EnabledAt, t1)
	}
}

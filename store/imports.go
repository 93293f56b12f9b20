package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// ImportFilter is ingest's ImportFilter: an imported row is known when the
// events table has its event id, or when this process accepted it before
// (it may still be in the durable log, not yet in ClickHouse). It has its
// own Deduper, so an import never evicts live traffic's event ids from the
// collector's.
//
// The runs that began importing a file are recorded in import_files, so
// that only a file imported before costs a lookup of stored ids for each
// part: for a file's first import, it makes none.
type ImportFilter struct {
	conn Conn
	db   string
	in   *Inserter
	seen *Deduper

	mu    sync.Mutex
	began map[fileRun]bool // runs this process recorded, and whether another began before
}

type fileRun struct {
	file [32]byte
	run  string
}

// maxBegan bounds ImportFilter.began: past it, the memory starts afresh
// (a run then records itself again, which is harmless).
const maxBegan = 10_000

// NewImportFilter returns a filter over database's events, remembering
// what it accepted in seen.
func NewImportFilter(conn Conn, database string, seen *Deduper) *ImportFilter {
	return &ImportFilter{conn: conn, db: quoteIdent(database), in: NewInserter(conn, database), seen: seen, began: map[fileRun]bool{}}
}

var importFilesColumns = []string{"file", "run", "started_at"}

const importFilesDDL = `CREATE TABLE IF NOT EXISTS {db}.import_files
(
    file       String COMMENT 'SHA-256 of the imported file, in hex',
    run        String COMMENT 'the import run: the parts tally import sends share one',
    started_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (file, run)`

// Begin implements ingest.ImportFilter. The run is recorded before
// another run is looked for: of two runs of one file begun at once, each
// then finds the other, and both look among the stored rows.
func (f *ImportFilter) Begin(ctx context.Context, file [32]byte, run string) (bool, error) {
	k := fileRun{file, run}
	f.mu.Lock()
	again, ok := f.began[k]
	f.mu.Unlock()
	if ok && again {
		return true, nil
	}
	hexFile := hex.EncodeToString(file[:])
	if !ok {
		err := f.in.insert(ctx, "import_files", importFilesColumns, 1, []any{[]string{hexFile}, []string{run}, []time.Time{time.Now().UTC()}})
		if err != nil {
			return false, fmt.Errorf("record import run: %w", err)
		}
	}
	// Asked again at each part of a run, to find a run begun meanwhile.
	others, err := queryCount(ctx, f.conn, "SELECT count() FROM "+f.db+".import_files WHERE file = ? AND run != ?", hexFile, run)
	if err != nil {
		return false, fmt.Errorf("look up earlier imports of the file: %w", err)
	}
	f.mu.Lock()
	if len(f.began) >= maxBegan {
		clear(f.began)
	}
	f.began[k] = others > 0
	f.mu.Unlock()
	return others > 0, nil
}

// Known implements ingest.ImportFilter. The events lookup names the rows'
// sites, event names and occurred range with their ids, so it reads the
// granules of that key range only.
func (f *ImportFilter) Known(ctx context.Context, cs []ingest.Completion, stored bool) ([]bool, error) {
	out := make([]bool, len(cs))
	if len(cs) == 0 {
		return out, nil
	}
	if !stored {
		for i := range cs {
			out[i] = !f.seen.FirstSeen(cs[i].EventName, cs[i].EventID)
		}
		return out, nil
	}
	sites, names := map[string]bool{}, map[string]bool{}
	lo, hi := cs[0].OccurredAt, cs[0].OccurredAt
	for i := range cs {
		sites[cs[i].Site], names[cs[i].EventName] = true, true
		lo, hi = minTime(lo, cs[i].OccurredAt), maxTime(hi, cs[i].OccurredAt)
	}
	// The ids are not sent: a list of thousands of literals costs
	// ClickHouse 18.16 more to parse than reading the ids of the rows
	// imported in that stretch of time (an import's rows are usually in
	// time order, so the stretch is short, and before the first import of
	// a file it holds none of its rows).
	q := fmt.Sprintf("SELECT event_name, event_id FROM %s.events WHERE site IN (%s) AND event_name IN (%s) AND occurred_at >= toDateTime(%d) AND occurred_at <= toDateTime(%d) AND source = 'import'",
		f.db, quoteList(keys(sites)), quoteList(keys(names)), clampTime(lo).Unix(), clampTime(hi).Unix())
	rows, err := f.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("look up %d imported event ids: %w", len(cs), err)
	}
	defer rows.Close()
	have := map[string]bool{}
	var name, id string
	for rows.Next() {
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("look up imported event ids: %w", err)
		}
		have[eventKey(name, id)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up imported event ids: %w", err)
	}
	for i := range cs {
		out[i] = have[eventKey(cs[i].EventName, cs[i].EventID)] || !f.seen.FirstSeen(cs[i].EventName, cs[i].EventID)
	}
	return out, nil
}

// Forget implements ingest.ImportFilter.
func (f *ImportFilter) Forget(cs []ingest.Completion) {
	for i := range cs {
		f.seen.Forget(cs[i].EventName, cs[i].EventID)
	}
}

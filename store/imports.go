package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// ImportFilter is ingest's ImportFilter: an imported row is known when the
// events table has its event id, or when this process accepted it before
// (it may still be in the durable log, not yet in ClickHouse). What this
// process accepted is kept as ranges of row numbers for each file and
// event (a file's rows are accepted mostly in order, so a million rows are
// a few ranges), not in the collector's Deduper, so an import never evicts
// live traffic's event ids, and a row costs no hashing.
//
// The runs that began importing a file are recorded in import_files, so
// that only a file imported before costs a lookup of stored ids for each
// part: for a file's first import, it makes none.
type ImportFilter struct {
	conn Conn
	db   string
	in   *Inserter

	mu       sync.Mutex
	began    map[fileRun]bool      // runs this process recorded, and whether another began before
	accepted map[fileEvent]*rowSet // rows this process accepted
}

type fileEvent struct {
	file  [32]byte
	event string
}

type fileRun struct {
	file [32]byte
	run  string
}

// maxBegan bounds ImportFilter.began and accepted: past it, the memory
// starts afresh (a run then records itself again, which is harmless; a
// retried part of a file forgotten is looked up among stored rows only if
// another run of it began).
const maxBegan = 10_000

// NewImportFilter returns a filter over database's events.
func NewImportFilter(conn Conn, database string) *ImportFilter {
	return &ImportFilter{conn: conn, db: quoteIdent(database), in: NewInserter(conn, database), began: map[fileRun]bool{}, accepted: map[fileEvent]*rowSet{}}
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
func (f *ImportFilter) Known(ctx context.Context, rows ingest.ImportRows, cs []ingest.Completion, stored bool) ([]bool, error) {
	if len(rows.Rows) != len(cs) {
		return nil, fmt.Errorf("import filter: %d row numbers for %d completions", len(rows.Rows), len(cs))
	}
	out := make([]bool, len(cs))
	if len(cs) == 0 {
		return out, nil
	}
	var have map[string]bool
	if stored {
		var err error
		if have, err = f.stored(ctx, cs); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var set *rowSet // of setEvent
	var setEvent string
	for i := range cs {
		if len(have) > 0 && have[eventKey(cs[i].EventName, cs[i].EventID)] { // no key built when none are stored
			out[i] = true
			continue
		}
		if set == nil || cs[i].EventName != setEvent {
			set, setEvent = f.rowsOf(rows.File, cs[i].EventName), cs[i].EventName
		}
		out[i] = !set.add(rows.Rows[i])
	}
	return out, nil
}

// rowsOf is the set of rows accepted of file for event; f.mu is held.
func (f *ImportFilter) rowsOf(file [32]byte, event string) *rowSet {
	k := fileEvent{file, event}
	set := f.accepted[k]
	if set == nil {
		if len(f.accepted) >= maxBegan {
			clear(f.accepted)
		}
		set = new(rowSet)
		f.accepted[k] = set
	}
	return set
}

// stored returns the keys (eventKey) of those of cs already in events.
func (f *ImportFilter) stored(ctx context.Context, cs []ingest.Completion) (map[string]bool, error) {
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
	return have, nil
}

// Forget implements ingest.ImportFilter.
func (f *ImportFilter) Forget(rows ingest.ImportRows, cs []ingest.Completion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range cs {
		if set := f.accepted[fileEvent{rows.File, cs[i].EventName}]; set != nil && i < len(rows.Rows) {
			set.remove(rows.Rows[i])
		}
	}
}

// rowSet is a set of row numbers as sorted, disjoint, non-adjacent ranges.
// Rows added in order extend the last range, at no search.
type rowSet struct {
	ranges []rowRange
}

type rowRange struct{ lo, hi int } // rows lo to hi-1

// find returns the index of the first range ending after r (r is in it
// when its lo <= r).
func (s *rowSet) find(r int) int {
	return sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].hi > r })
}

// add adds r and reports whether it was new.
func (s *rowSet) add(r int) bool {
	if n := len(s.ranges); n == 0 || r > s.ranges[n-1].hi {
		s.ranges = append(s.ranges, rowRange{r, r + 1})
		return true
	} else if r == s.ranges[n-1].hi {
		s.ranges[n-1].hi++
		return true
	}
	i := s.find(r)
	if i < len(s.ranges) && s.ranges[i].lo <= r {
		return false
	}
	// r lies before range i (or after the last one, handled above) and
	// after range i-1.
	joinsPrev := i > 0 && s.ranges[i-1].hi == r
	joinsNext := i < len(s.ranges) && s.ranges[i].lo == r+1
	switch {
	case joinsPrev && joinsNext:
		s.ranges[i-1].hi = s.ranges[i].hi
		s.ranges = slices.Delete(s.ranges, i, i+1)
	case joinsPrev:
		s.ranges[i-1].hi++
	case joinsNext:
		s.ranges[i].lo--
	default:
		s.ranges = slices.Insert(s.ranges, i, rowRange{r, r + 1})
	}
	return true
}

// remove takes r out of the set.
func (s *rowSet) remove(r int) {
	i := s.find(r)
	if i == len(s.ranges) || s.ranges[i].lo > r {
		return
	}
	g := s.ranges[i]
	switch {
	case g.lo == r && g.hi == r+1:
		s.ranges = slices.Delete(s.ranges, i, i+1)
	case g.lo == r:
		s.ranges[i].lo++
	case g.hi == r+1:
		s.ranges[i].hi--
	default:
		s.ranges[i].hi = r
		s.ranges = slices.Insert(s.ranges, i+1, rowRange{r + 1, g.hi})
	}
}

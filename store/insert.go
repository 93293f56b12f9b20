package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/ingest"
)

// Inserter sends rows to the tables of one tally database. Its methods are
// the insert functions the writers take, and InsertDeliveries is what the
// rules engine records forward outcomes with.
type Inserter struct {
	conn    Conn
	db      string
	scratch sync.Pool // of *EventBatch, for InsertBlocks
}

// NewInserter returns an Inserter for database (already migrated).
func NewInserter(conn Conn, database string) *Inserter {
	return &Inserter{conn: conn, db: quoteIdent(database)}
}

// InsertEvents sends one batch to events in a single INSERT.
func (in *Inserter) InsertEvents(ctx context.Context, b *EventBatch) error {
	return in.insert(ctx, "events", eventColumns, b.Len(), b.columns())
}

// InsertBlocks sends completions to events in a single INSERT, encoding
// them one block (insertBlockRows) at a time into one reused EventBatch,
// so the columns of the whole batch are never held at once: a row's
// column form costs about as much memory as its Completion. Nothing is
// sent when blocks hands no completion. Calls may run concurrently.
func (in *Inserter) InsertBlocks(ctx context.Context, blocks Blocks) error {
	wait, err := in.StartBlocks(ctx, blocks)
	if err != nil {
		return err
	}
	return wait()
}

// StartBlocks is InsertBlocks returning once the last block is handed to
// the driver, before the INSERT ends: wait ends it (ClickHouse 18.16
// gathers an INSERT's blocks and writes the part at its end) and returns
// the outcome. blocks is not used after StartBlocks returns.
func (in *Inserter) StartBlocks(ctx context.Context, blocks Blocks) (wait func() error, err error) {
	b, _ := in.scratch.Get().(*EventBatch)
	if b == nil {
		b = new(EventBatch)
	}
	defer func() {
		b.Reset() // the driver holds a copy of what was appended
		in.scratch.Put(b)
	}()
	return in.startStream(ctx, "events", eventColumns, func(send func(values []any, rows int) error) error {
		return blocks(insertBlockRows, func(cs []ingest.Completion) error {
			b.Reset()
			b.Encode(cs)
			return send(b.columns(), len(cs))
		})
	})
}

// InsertRejections sends one batch to rejections in a single INSERT.
func (in *Inserter) InsertRejections(ctx context.Context, b *RejectionBatch) error {
	return in.insert(ctx, "rejections", rejectionColumns, b.Len(), b.columns())
}

// Delivery is one outcome of forwarding one event to one destination: a
// row of the deliveries table, and the one type every destination, the
// rules engine and readers of the log use for it.
type Delivery struct {
	EventID     string
	SourceEvent string // tally's event name of the completion (column event_name)
	Rule        string
	Destination string
	// ForwardedName is what the destination calls the event: Meta's event
	// name (Lead), a Salesforce Task, a webhook's event name.
	ForwardedName string
	Status        string // sent, retrying, failed, expired, paused, skipped_consent, …
	Attempts      int    // attempts made so far, this one included
	HTTPStatus    int    // 0 when no HTTP answer was received
	// TraceID is the destination's id for the request that carried the
	// event (Meta's fbtrace_id, Salesforce's record id, a webhook-id).
	TraceID  string
	Message  string    // why, for anything but sent (column error)
	QueuedAt time.Time // when the forward was first queued (column created_at)
	At       time.Time // when this outcome happened (column updated_at)
	// EventTime is when the completion happened; it is not a column (the
	// events table has it).
	EventTime time.Time
	Payload   string // the event as sent (user data as the rule shares it), cut to maxDeliveryPayload
	Response  string // the destination's answer, cut to maxDeliveryPayload
}

// InsertDeliveries writes outcomes synchronously in one INSERT. The caller
// keeps its own queue and retries; outcomes are few next to completions.
func (in *Inserter) InsertDeliveries(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	var (
		eventID, eventName, rule, dest, fwd, status = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempts                                    = make([]uint32, n)
		httpStatus                                  = make([]uint16, n)
		trace, errMsg                               = make([]string, n), make([]string, n)
		created, updated                            = make([]time.Time, n), make([]time.Time, n)
		payload, response                           = make([]string, n), make([]string, n)
	)
	for i, d := range ds {
		eventID[i], eventName[i], rule[i], dest[i], fwd[i], status[i] = d.EventID, d.SourceEvent, d.Rule, d.Destination, d.ForwardedName, d.Status
		attempts[i] = uint32(min(max(d.Attempts, 0), 1<<32-1))
		httpStatus[i] = uint16(min(max(d.HTTPStatus, 0), 1<<16-1))
		trace[i], errMsg[i] = d.TraceID, cutUTF8(d.Message, maxDeliveryError)
		if d.QueuedAt.IsZero() {
			d.QueuedAt = d.At
		}
		created[i], updated[i] = clampTime(d.QueuedAt), clampTime(d.At)
		payload[i], response[i] = cutUTF8(d.Payload, maxDeliveryPayload), cutUTF8(d.Response, maxDeliveryPayload)
	}
	return in.insert(ctx, "deliveries", deliveryColumns, n,
		[]any{eventID, eventName, rule, dest, fwd, status, attempts, httpStatus, trace, errMsg, created, updated, payload, response})
}

// maxDeliveryError bounds a stored error message; a destination's error body
// can be large and is only read by people.
const maxDeliveryError = 4096

// maxDeliveryPayload bounds a stored payload and answer: one event with
// every user data key hashed and a full custom_data is about 2 KB; 16 KiB
// keeps any real one whole while a runaway one cannot bloat the table.
const maxDeliveryPayload = 16 << 10

// insert sends rows to table as one INSERT, its columns appended whole
// (the driver copies a column slice at once, without reflection per row),
// in blocks of insertBlockRows: the driver holds a copy of one block, not
// of the whole batch, and reuses it for the next. The server gathers the
// blocks of one INSERT into one part (min_insert_block_size_rows;
// TestInsertBlocksMakeOnePart).
func (in *Inserter) insert(ctx context.Context, table string, columns []string, rows int, values []any) error {
	return in.insertStream(ctx, table, columns, func(send func(values []any, rows int) error) error {
		for from := 0; from < rows; from += insertBlockRows {
			to := min(rows, from+insertBlockRows)
			block := make([]any, len(values))
			for i, v := range values {
				if arrays, ok := v.([][]string); ok {
					block[i] = arrays[from:to]
				} else {
					block[i] = rowsOf(v, from, to)
				}
			}
			if err := send(block, to-from); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertStream sends the blocks each hands to send as one INSERT into
// table, prepared at the first block with rows; a block is sent when the
// next one comes or with the INSERT's end. Nothing is sent when no block
// has rows.
func (in *Inserter) insertStream(ctx context.Context, table string, columns []string, each func(send func(values []any, rows int) error) error) error {
	wait, err := in.startStream(ctx, table, columns, each)
	if err != nil {
		return err
	}
	return wait()
}

// startStream is insertStream returning once each has handed its last
// block, with wait to end the INSERT: the end (the last block sent, and
// the server's answer once it has stored the part) runs meanwhile.
func (in *Inserter) startStream(ctx context.Context, table string, columns []string, each func(send func(values []any, rows int) error) error) (wait func() error, err error) {
	s := in.newStream(ctx, table, columns)
	if err := each(s.send); err != nil {
		s.abort()
		return nil, err
	}
	return s.end(), nil
}

// stream is one INSERT whose blocks are sent as they are handed to it,
// prepared at the first block with rows: a block is sent when the next
// one comes or at the end.
type stream struct {
	in      *Inserter
	ctx     context.Context
	table   string
	columns []string
	batch   driver.Batch
	ptrs    []*string // appendArrays's scratch
	rows    int
}

func (in *Inserter) newStream(ctx context.Context, table string, columns []string) *stream {
	return &stream{in: in, ctx: ctx, table: table, columns: columns}
}

func (s *stream) fail(err error) error {
	return fmt.Errorf("insert into %s (%d rows sent): %w", s.table, s.rows, err)
}

// send appends a block of n rows, values holding a slice per column.
func (s *stream) send(values []any, n int) error {
	if n == 0 {
		return nil
	}
	if s.batch == nil {
		// 18.16 needs the column list: a bare INSERT INTO t fails
		// there with "expected 0 arguments".
		b, err := s.in.conn.PrepareBatch(s.ctx, "INSERT INTO "+s.in.db+"."+s.table+" ("+strings.Join(s.columns, ", ")+")")
		if err != nil {
			return s.fail(fmt.Errorf("prepare: %w", err))
		}
		s.batch = b
	} else if err := s.batch.Flush(); err != nil {
		return s.fail(err)
	}
	for i, v := range values {
		col := s.batch.Column(i)
		var err error
		if arrays, ok := v.([][]string); ok {
			err = appendArrays(col, arrays, &s.ptrs)
		} else {
			err = col.Append(v)
		}
		if err != nil {
			return s.fail(fmt.Errorf("column %s: %w", s.columns[i], err))
		}
	}
	s.rows += n
	return nil
}

// end sends the last block and returns wait, which returns the INSERT's
// outcome once the server has stored it; nothing is sent when no block
// had rows.
func (s *stream) end() (wait func() error) {
	if s.batch == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		defer s.batch.Close()
		if err := s.batch.Send(); err != nil {
			done <- s.fail(err)
			return
		}
		done <- nil
	}()
	return func() error { return <-done }
}

// abort drops the INSERT without sending its last block.
func (s *stream) abort() {
	if s.batch != nil {
		s.batch.Close()
	}
}

// insertBlockRows is the most rows sent in one block of an INSERT.
const insertBlockRows = 2000

// rowsOf is rows from to to of a column's values (a slice of any type).
func rowsOf(v any, from, to int) any {
	return reflect.ValueOf(v).Slice(from, to).Interface()
}

// appendArrays appends the rows of an Array(String) column. The driver's
// Append of a [][]string walks it by reflection and boxes every string (an
// allocation each); given a row as []*string it takes the pointers as they
// are, and copies the strings: the pointers come from *scratch, one slice
// the INSERT's blocks share.
func appendArrays(col driver.BatchColumn, arrays [][]string, scratch *[]*string) error {
	n := 0
	for _, a := range arrays {
		n += len(a)
	}
	if cap(*scratch) < n {
		*scratch = make([]*string, n)
	}
	ptrs := (*scratch)[:n]
	defer clear(ptrs) // the pointers must not keep the block's strings
	for _, a := range arrays {
		row := ptrs[:len(a):len(a)]
		ptrs = ptrs[len(a):]
		for j := range a {
			row[j] = &a[j]
		}
		if err := col.AppendRow(row); err != nil {
			return err
		}
	}
	return nil
}

// Existing reports which of cs are already in the events table, as keys
// made by eventKey. It asks in chunks of existingChunk ids, each query well
// under ClickHouse's 256 KiB max_query_size.
func (in *Inserter) Existing(ctx context.Context, cs []ingest.Completion) (map[string]bool, error) {
	have := map[string]bool{}
	for len(cs) > 0 {
		n := min(len(cs), existingChunk)
		if err := in.existing(ctx, cs[:n], have); err != nil {
			return nil, err
		}
		cs = cs[n:]
	}
	return have, nil
}

// existingChunk: an event id is at most 64 bytes (ingest's limit), about
// 70 quoted, so 2,000 make a query of about 140 KB.
const existingChunk = 2000

func (in *Inserter) existing(ctx context.Context, cs []ingest.Completion, have map[string]bool) error {
	// Literals, not bound arrays: 18.16 refuses an Array parameter in IN.
	var ids, names strings.Builder
	seen := map[string]bool{}
	for i := range cs {
		if i > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(quoteString(cs[i].EventID))
		if !seen[cs[i].EventName] {
			if len(seen) > 0 {
				names.WriteByte(',')
			}
			seen[cs[i].EventName] = true
			names.WriteString(quoteString(cs[i].EventName))
		}
	}
	rows, err := in.conn.Query(ctx, "SELECT event_name, event_id FROM "+in.db+".events WHERE event_name IN ("+names.String()+") AND event_id IN ("+ids.String()+")")
	if err != nil {
		return fmt.Errorf("look up %d stored event ids: %w", len(cs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			return fmt.Errorf("look up stored event ids: %w", err)
		}
		have[eventKey(name, id)] = true
	}
	return rows.Err()
}

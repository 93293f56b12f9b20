package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/wal"
)

// LogSink is the acceptance pipeline's Sink: it appends a request's
// completions to the durable log as one record and returns once the record
// is on disk. A full log answers ingest.ErrFull (the collector's 503 with
// Retry-After).
type LogSink struct {
	log  *wal.Log
	bufs sync.Pool
}

// NewLogSink returns a Sink appending to l.
func NewLogSink(l *wal.Log) *LogSink {
	return &LogSink{log: l, bufs: sync.Pool{New: func() any { return new([]byte) }}}
}

// Write implements ingest.Sink.
func (s *LogSink) Write(ctx context.Context, cs []ingest.Completion) error {
	bp := s.bufs.Get().(*[]byte)
	// A completion takes 150-600 bytes in a record: room for a large batch
	// at once, not by doubling (an import record holds 5,000 rows).
	if want := wal.FrameHeader + 256*len(cs); cap(*bp) < want {
		*bp = make([]byte, 0, want)
	}
	*bp = AppendRecord(append((*bp)[:0], make([]byte, wal.FrameHeader)...), cs)
	_, err := s.log.AppendFrame(ctx, *bp)
	if cap(*bp) <= 2<<20 { // an import record's buffer, not a huge batch's: that must not pin memory
		s.bufs.Put(bp)
	}
	if errors.Is(err, wal.ErrFull) {
		return fmt.Errorf("%w: %w", ingest.ErrFull, err)
	}
	return err
}

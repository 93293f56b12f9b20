package store

import (
	"context"

	"github.com/tally-analytics/tally/ingest"
)

// The tests write completions they hold in a slice through the writer's
// own paths.

// InsertCompletions sends cs to events in a single INSERT (InsertBlocks).
func (in *Inserter) InsertCompletions(ctx context.Context, cs []ingest.Completion) error {
	return in.InsertBlocks(ctx, sliceBlocks(cs))
}

// InsertPersons writes the person rows of cs (StartPersonRows).
func (in *Inserter) InsertPersons(ctx context.Context, cs []ingest.Completion) error {
	return writePersons(in.StartPersonRows(ctx), sliceBlocks(cs))
}

// endingWith is a PersonSink whose End is end's.
type endingWith struct {
	PersonSink
	end func(s PersonSink) error
}

func (s endingWith) End() error { return s.end(s.PersonSink) }

// sliceBlocks hands cs as Blocks of at most n.
func sliceBlocks(cs []ingest.Completion) Blocks {
	return func(n int, fn func([]ingest.Completion) error) error {
		for len(cs) > 0 {
			k := min(n, len(cs))
			if err := fn(cs[:k]); err != nil {
				return err
			}
			cs = cs[k:]
		}
		return nil
	}
}

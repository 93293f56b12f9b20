package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// ImportFilter keeps an import from adding what is already there. It is
// not the live Deduper: an import of a million rows must not evict the
// event ids of live traffic from it.
type ImportFilter interface {
	// Begin is called before the rows of a request are checked: file is
	// the content hash of the file they come from, run the import run
	// they belong to (the parts `tally import` sends share one). It
	// records the run durably, and answers whether another run of the
	// same file began before. Only then can rows of the file be stored
	// already: a file's rows have ids no other file makes (ImportID).
	Begin(ctx context.Context, file [32]byte, run string) (again bool, err error)
	// Known reports, for each completion, whether it was accepted before;
	// the others are remembered as accepted from now on. rows says which
	// row of which file each completion is. With stored set (Begin
	// answered again) it looks among the stored rows too; otherwise only
	// in what this process accepted.
	Known(ctx context.Context, rows ImportRows, cs []Completion, stored bool) ([]bool, error)
	// Forget undoes Known's remembering, for completions the pipeline then
	// refused (a full log), so that a retry is not taken for a duplicate.
	Forget(rows ImportRows, cs []Completion)
}

// ImportRows names the rows a batch of imported completions comes from:
// the content hash of their file and each one's row number in it (the two
// their ids are made of, see ImportID).
type ImportRows struct {
	File [32]byte
	Rows []int // Rows[i] is the row of the batch's i-th completion
}

// ImportConfig is what POST /imports needs from main.
type ImportConfig struct {
	// Pipeline accepts the rows: enrichment and the durable log, as live
	// traffic, with no Deduper of its own (Filter is the import's).
	Pipeline *Pipeline
	Filter   ImportFilter
}

// ImportSummary is the answer of POST /imports and what tally import
// prints at the end.
type ImportSummary struct {
	Imported   int            `json:"imported"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	ByReason   map[string]int `json:"rejectedByReason"`
	// Errors lists the rejected rows, at most maxImportErrors a request
	// (tally import sends 5,000 rows a request, so it sees every one).
	Errors []ImportError `json:"errors"`
}

// ImportError is one rejected row.
type ImportError struct {
	Line    int    `json:"line"`
	Row     int    `json:"row"`
	In      string `json:"in"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Add folds s2 into s.
func (s *ImportSummary) Add(s2 ImportSummary) {
	s.Imported += s2.Imported
	s.Duplicates += s2.Duplicates
	s.Rejected += s2.Rejected
	for k, v := range s2.ByReason {
		if s.ByReason == nil {
			s.ByReason = map[string]int{}
		}
		s.ByReason[k] += v
	}
}

const (
	// importCheck rows are checked against the filter at once, and those
	// not known are appended to the log as one record: one lookup of
	// stored ids costs about as much for 5,000 rows as for 1,000, and
	// 5,000 rows of about 200 bytes is a ~1 MB record. That fills a 1 MiB
	// segment alone, so the log's in-memory tail is not regrown for every
	// record of an import (a segment of five 1,000-row records was copied
	// into buffers of growing size five times); it is within the readers'
	// 4 MiB and the events writer's 16 MiB batches.
	importCheck = 5000
	// importRejections rejected rows are handed to reject at once.
	importRejections = 1000
	// maxRunID bounds the run query parameter of POST /imports.
	maxRunID = 64
	// maxImportErrors bounds the rows listed in one answer.
	maxImportErrors = 10_000
)

// importBatches holds the batches of importCheck completions Import reads
// rows into (a 3.8 MB array each), so a request takes one a concurrent
// request is not using rather than allocating it. A slot is overwritten
// whole by each row read into it, and nothing keeps a completion past
// Pipeline.Accept.
var importBatches = sync.Pool{New: func() any {
	b := make([]Completion, importCheck)
	return &b
}}

// Import reads completions from x and accepts them in batches through
// cfg's filter and pipeline; rejected rows are counted, listed (up to
// maxImportErrors) and passed to reject. It stops at the first error of
// the filter or pipeline (ErrFull, wrapped, when the log is full): what
// was accepted before stays, and a retry of the same rows finds it known.
//
// run names the import run the rows belong to (see ImportFilter.Begin).
func Import(ctx context.Context, cfg ImportConfig, x *CSVReader, run string, reject func([]Rejection)) (ImportSummary, error) {
	var sum ImportSummary
	sum.ByReason = map[string]int{}
	again, err := cfg.Filter.Begin(ctx, x.source, run)
	if err != nil {
		return sum, fmt.Errorf("record the import of the file: %w", err)
	}
	pooled := importBatches.Get().(*[]Completion)
	defer importBatches.Put(pooled)
	batch := (*pooled)[:0]
	nums := make([]int, 0, importCheck) // the row number of each completion in batch
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		known, err := cfg.Filter.Known(ctx, ImportRows{File: x.source, Rows: nums}, batch, again)
		if err != nil {
			return fmt.Errorf("check imported rows against stored ones: %w", err)
		}
		n := 0
		for i := range batch {
			if known[i] {
				sum.Duplicates++
				continue
			}
			if n != i { // a Completion is large: the rows that stay are not copied
				batch[n], nums[n] = batch[i], nums[i]
			}
			n++
		}
		if fresh := batch[:n]; len(fresh) > 0 {
			if err := cfg.Pipeline.Accept(ctx, fresh); err != nil {
				cfg.Filter.Forget(ImportRows{File: x.source, Rows: nums[:n]}, fresh)
				return err
			}
			sum.Imported += n
		}
		batch, nums = batch[:0], nums[:0]
		return nil
	}
	var rejs []Rejection
	for {
		// The row is read into the batch's next slot, and left off it
		// unless good.
		batch = batch[:len(batch)+1]
		line, row, problems, err := x.read(&batch[len(batch)-1])
		if err != nil || len(problems) > 0 {
			batch = batch[:len(batch)-1]
		} else {
			nums = append(nums, row)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, err
		}
		if len(problems) > 0 {
			sum.Rejected++
			e := problems[0]
			sum.ByReason[e.Code]++
			if len(sum.Errors) < maxImportErrors {
				msg := e.Message
				if len(problems) > 1 {
					msg += fmt.Sprintf(" (and %d more problems)", len(problems)-1)
				}
				sum.Errors = append(sum.Errors, ImportError{Line: line, Row: row, In: e.Path, Code: e.Code, Message: msg})
			}
			rejs = append(rejs, Rejection{Source: SourceImport, EventName: x.def.Name, Reason: e.Code, Field: e.Path,
				Payload: "line " + strconv.Itoa(line) + ": " + e.Message})
			if len(rejs) >= importRejections {
				reject(rejs)
				rejs = nil
			}
			continue
		}
		if len(batch) == importCheck {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	if len(rejs) > 0 {
		reject(rejs)
	}
	return sum, flush()
}

// importCSV answers POST /imports?event=NAME: the body is a CSV file (or a
// part of one: hash, row and line say where it sits, see CSVChunk), and
// the answer is its ImportSummary.
func (c *Collector) importCSV(ctx *fiber.Ctx) error {
	if c.cfg.Import.Pipeline == nil || c.cfg.Import.Filter == nil {
		return writeEnvelope(ctx, fiber.StatusNotImplemented, envelope{Category: "NOT_IMPLEMENTED", Message: "imports are not configured on this server"})
	}
	// Parts sent with one run id are one import; a request without one is
	// a run of its own.
	run := ctx.Query("run")
	if len(run) > maxRunID {
		return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR", Message: fmt.Sprintf("run must be at most %d characters", maxRunID)})
	}
	if run == "" {
		run = uuid.NewString()
	}
	body, err := c.apiBody(ctx)
	if body == nil {
		return err
	}
	chunk := CSVChunk{}
	if h := ctx.Query("hash"); h != "" {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(chunk.FileHash) {
			return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR", Message: "hash must be the file's SHA-256 in hex"})
		}
		copy(chunk.FileHash[:], b)
		chunk.FirstRow, chunk.FirstLine = ctx.QueryInt("row", 1), ctx.QueryInt("line", 2)
	} else {
		chunk.FileHash = sha256.Sum256(body)
	}
	now := c.now()
	x, err := NewCSVReader(c.catalog, ctx.Query("event"), bytes.NewReader(body), chunk, now)
	if err != nil {
		return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR", Message: err.Error()})
	}
	sum, err := Import(ctx.UserContext(), c.cfg.Import, x, run, func(rs []Rejection) {
		for i := range rs {
			rs[i].At = now.UTC()
		}
		c.reject(rs)
	})
	if errors.Is(err, ErrTooManyRows) {
		return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR", Message: err.Error()})
	}
	if err != nil {
		return err
	}
	return ctx.JSON(sum)
}

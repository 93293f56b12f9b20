package ingest

import (
	"bytes"
	"crypto/sha1"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CSV import of past completions (§5.3): a header row naming email,
// occurred_at and property columns, then one completion per row. Every row
// is checked with the API path's rules (ParseAPIInput's checks: identifier
// limits and form, time in range and not in the future, ApplyProperties in
// Strict mode); a bad row is reported with its line number and reason and
// the rest import. Rows are read one at a time, so memory does not grow
// with the file.

// MaxImportRows is the most data rows one import takes (§5.3).
const MaxImportRows = 1_000_000

// CSVReader reads completions of one event from a CSV stream.
type CSVReader struct {
	def     *Definition
	r       *csv.Reader
	now     time.Time
	source  [32]byte // content hash of the whole file: the ids' namespace
	row     int      // data rows read, this chunk's first row included
	line0   int      // file line of the stream's first data row, less 2 (see NewCSVReader)
	emailAt int
	timeAt  int
	cols    []propColumn // the property columns, sorted by name
}

// propColumn is a property column of the header: its index and the
// property it holds.
type propColumn struct {
	at   int
	name string
}

// ImportRow is one data row: its completion, or the problems that kept it
// out.
type ImportRow struct {
	Line       int // line of the file the row starts on
	Row        int // 1-based data row number in the file
	Completion Completion
	Errors     []FieldError // empty when the row is good
}

// ErrTooManyRows ends an import at its MaxImportRows+1st row.
var ErrTooManyRows = fmt.Errorf("more than %d rows: split the file", MaxImportRows)

// ImportID is a row's event id: a name-based UUID of the file's content
// hash and the row number, so importing the same file again makes the same
// ids, and the acceptance pipeline's duplicate check leaves them out.
func ImportID(fileHash [32]byte, row int) string {
	// uuid.NewSHA1(importNamespace, fileHash+row) without its per-call
	// hasher and buffers (TestImportIDIsUUIDv5 holds the two equal: the
	// ids of a file must not change between versions).
	var buf [len(importNamespace) + 32 + 20]byte
	b := append(append(buf[:0], importNamespace[:]...), fileHash[:]...)
	sum := sha1.Sum(strconv.AppendInt(b, int64(row), 10))
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

var importNamespace = uuid.MustParse("8a5b0c2e-7a51-4c1f-9e0b-5d1f0a3c7e21")

// CSVChunk says where a stream sits in its file, for files sent in parts
// (tally import sends 5,000 rows a request): the whole file's content hash,
// the number of the stream's first data row (1-based), and the file line it
// starts on. The zero value means the stream is the whole file, hashed by
// the caller.
type CSVChunk struct {
	FileHash  [32]byte
	FirstRow  int
	FirstLine int
}

// NewCSVReader reads the header of r and checks it against the event's
// definition: a column for email and one for occurred_at are required, and
// every other column must be a property of the event (or a HubSpot default
// property). Header names are matched case-insensitively, with spaces and
// hyphens read as underscores ("Occurred At" is occurred_at); a UTF-8 byte
// order mark is skipped.
func NewCSVReader(cat *Catalog, event string, r io.Reader, chunk CSVChunk, now time.Time) (*CSVReader, error) {
	def, ok := cat.Lookup(event)
	if !ok {
		return nil, fmt.Errorf("event %q is not defined in the config", event)
	}
	cr := csv.NewReader(skipBOM(r))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1 // a short or long row is that row's error, not the file's
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: it needs a header row")
		}
		return nil, fmt.Errorf("header row: %w", err)
	}
	x := &CSVReader{def: def, r: cr, now: now, source: chunk.FileHash, emailAt: -1, timeAt: -1,
		row: max(chunk.FirstRow, 1) - 1, line0: max(chunk.FirstLine, 2) - 2}
	seen := map[string]bool{}
	var problems []string
	for i, h := range head {
		name := headerName(h)
		if seen[name] {
			problems = append(problems, fmt.Sprintf("column %q appears twice", h))
			continue
		}
		seen[name] = true
		switch name {
		case "email", "email_address":
			x.emailAt = i
		case "occurred_at", "occurredat", "timestamp":
			x.timeAt = i
		default:
			if _, ok := def.Property(name); !ok {
				if _, hs := hubspotDefaults[name]; !hs {
					problems = append(problems, fmt.Sprintf("column %q is not a property of event %q", h, def.Name))
					continue
				}
			}
			x.cols = append(x.cols, propColumn{at: i, name: name})
		}
	}
	if x.emailAt < 0 {
		problems = append(problems, "no email column")
	}
	if x.timeAt < 0 {
		problems = append(problems, "no occurred_at column")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("header row: %s", strings.Join(problems, "; "))
	}
	// Sorted by name once, so a row's properties come out in the order
	// ApplyProperties would sort them into.
	slices.SortFunc(x.cols, func(a, b propColumn) int { return strings.Compare(a.name, b.name) })
	return x, nil
}

// headerName is the name a header cell refers to.
func headerName(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	return strings.NewReplacer(" ", "_", "-", "_").Replace(h)
}

func skipBOM(r io.Reader) io.Reader { return &bomReader{r: r} }

// bomReader drops a UTF-8 byte order mark at the start of the stream.
type bomReader struct {
	r    io.Reader
	done bool
	buf  []byte
}

func (b *bomReader) Read(p []byte) (int, error) {
	if !b.done {
		b.done = true
		head := make([]byte, 3)
		n, err := io.ReadFull(b.r, head)
		head = head[:n]
		b.buf = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	if len(b.buf) > 0 {
		n := copy(p, b.buf)
		b.buf = b.buf[n:]
		return n, nil
	}
	return b.r.Read(p)
}

// Next reads the next row; io.EOF ends the stream, ErrTooManyRows a file
// past the limit. A row with problems comes back with Errors set, its
// reason codes the API's (INVALID_TIME, FUTURE_TIME, INVALID_EMAIL,
// VALUE_TOO_LONG, …) plus REQUIRED and INVALID_ROW.
func (x *CSVReader) Next() (ImportRow, error) {
	var ir ImportRow
	var err error
	ir.Line, ir.Row, ir.Errors, err = x.read(&ir.Completion)
	return ir, err
}

// read is Next filling the caller's completion in place (a Completion is
// large, and an import reads a million of them). It returns the row's line
// and number, always, and its problems; c is filled when there are none.
func (x *CSVReader) read(c *Completion) (line, row int, problems []FieldError, err error) {
	rec, err := x.r.Read()
	if errors.Is(err, io.EOF) {
		return 0, 0, nil, io.EOF
	}
	x.row++
	at, _ := x.r.FieldPos(0)
	line, row = x.line0+at, x.row
	if x.row > MaxImportRows {
		return line, row, nil, ErrTooManyRows
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			line = x.line0 + pe.StartLine
			return line, row, []FieldError{{Path: "row", Code: "INVALID_ROW", Message: echo(pe.Err.Error(), maxEchoMessage)}}, nil
		}
		return line, row, nil, fmt.Errorf("read line %d: %w", line, err)
	}
	// Trailing empty cells may be left off (hand-made files do); a row too
	// short to hold its email and time is caught below as missing them.
	cell := func(i int) string {
		if i < len(rec) {
			return rec[i]
		}
		return ""
	}
	*c = Completion{EventName: x.def.Name, Source: SourceImport, ReceivedAt: x.now.UTC(), Consent: Consent{Analytics: true, Ads: true},
		EventID: ImportID(x.source, x.row)}
	email := NormalizeEmail(cell(x.emailAt))
	switch {
	case email == "":
		problems = append(problems, fieldErr("email", "REQUIRED", "email is required"))
	default:
		if code, msg := checkIdentifier(email, MaxEmailLen); code != "" {
			problems = append(problems, fieldErr("email", code, "email %s", msg))
		} else if !isEmailAddress(email) {
			problems = append(problems, fieldErr("email", "INVALID_EMAIL", "email %q is not a valid address", echo(email, MaxEmailLen)))
		}
		c.Identity.Email = email
	}
	switch ts := strings.TrimSpace(cell(x.timeAt)); {
	case ts == "":
		problems = append(problems, fieldErr("occurred_at", "REQUIRED", "occurred_at is required"))
	default:
		t, err := ParseTime(ts)
		switch {
		case err != nil:
			problems = append(problems, fieldErr("occurred_at", "INVALID_TIME", "occurred_at: %v", err))
		case t.After(x.now.Add(MaxFutureSkew)):
			problems = append(problems, fieldErr("occurred_at", "FUTURE_TIME", "occurred_at %s is in the future", t.Format(time.RFC3339)))
		case t.Before(MinOccurredAt):
			problems = append(problems, fieldErr("occurred_at", "INVALID_TIME", "occurred_at %s is before 1970", t.Format(time.RFC3339)))
		default:
			c.OccurredAt = t
		}
	}
	if len(rec) > len(x.cols)+2 {
		problems = append(problems, fieldErr("row", "INVALID_ROW", "%d cells; the header has %d", len(rec), len(x.cols)+2))
	}
	props := make([]Prop, 0, len(x.cols))
	for _, col := range x.cols {
		if v := cell(col.at); v != "" { // an empty cell is an absent property
			props = append(props, Prop{Name: col.name, Value: v})
		}
	}
	if len(props) > MaxPropsPerCompletion {
		return line, row, append(problems, ApplyProperties(c, x.def, props, Strict, "properties")...), nil
	}
	// The header's names are checked, unique and sorted: only the values
	// are left to check (FuzzCSVPropertiesAsAPI).
	return line, row, applyNamed(c, x.def, props, Strict, "properties", problems), nil
}

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func readCSV(t *testing.T, csvText string, chunk CSVChunk) ([]ImportRow, error) {
	t.Helper()
	cat := NewCatalog([]Definition{testDef})
	x, err := NewCSVReader(cat, "viewed_car", strings.NewReader(csvText), chunk, fixedNow)
	if err != nil {
		return nil, err
	}
	var out []ImportRow
	for {
		r, err := x.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

func TestCSVReaderRows(t *testing.T) {
	file := "\ufeffEmail,Occurred At,Make,year,hs_page_url\n" +
		" Ada@Example.com ,2026-01-02T03:04:05.678Z,volvo,2020,https://shop.example.com/1\n" +
		"bob@example.com,1767225600000,,,\n" +
		"\n" +
		"carl@example.com,2026-01-02,\"saab\nturbo\",19.5\n" +
		"not-an-email,2026-01-02,saab,2020,\n" +
		"dora@example.com,2027-01-01T00:00:00Z,saab,2020,\n" +
		"eve@example.com,,saab,many,\n" +
		"fay@example.com,2026-01-02,saab,2020,,extra\n"
	rows, err := readCSV(t, file, CSVChunk{FileHash: sha256.Sum256([]byte("file"))})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		line, row int
		codes     string
	}
	wants := []want{{2, 1, ""}, {3, 2, ""}, {5, 3, ""}, {7, 4, "INVALID_EMAIL"}, {8, 5, "FUTURE_TIME"}, {9, 6, "REQUIRED INVALID_VALUE"}, {10, 7, "INVALID_ROW"}}
	if len(rows) != len(wants) {
		t.Fatalf("read %d rows; want %d", len(rows), len(wants))
	}
	for i, w := range wants {
		r := rows[i]
		var codes []string
		for _, e := range r.Errors {
			codes = append(codes, e.Code)
		}
		if r.Line != w.line || r.Row != w.row || strings.Join(codes, " ") != w.codes {
			t.Errorf("row %d: line %d, row %d, errors %v; want line %d, row %d, %q", i, r.Line, r.Row, r.Errors, w.line, w.row, w.codes)
		}
	}
	ada := rows[0].Completion
	if ada.Identity.Email != "ada@example.com" || ada.Source != SourceImport || ada.EventName != "viewed_car" ||
		ada.OccurredAt != time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC) || ada.Page.URL != "https://shop.example.com/1" ||
		fmt.Sprint(ada.Props) != "[{make volvo} {year 2020}]" {
		t.Errorf("first row = %+v", ada)
	}
	if len(rows[1].Completion.Props) != 0 {
		t.Errorf("empty cells became properties: %v", rows[1].Completion.Props)
	}
	if rows[0].Completion.EventID != ImportID(sha256.Sum256([]byte("file")), 1) || rows[0].Completion.EventID == rows[1].Completion.EventID {
		t.Errorf("ids %q, %q are not the file's per-row ids", rows[0].Completion.EventID, rows[1].Completion.EventID)
	}
	// A later part of the same file numbers its rows and lines from where
	// it starts, so its ids are those of the whole file's rows.
	part, err := readCSV(t, "email,occurred_at,make\nbob@example.com,1767225600000,\n", CSVChunk{FileHash: sha256.Sum256([]byte("file")), FirstRow: 2, FirstLine: 3})
	if err != nil || len(part) != 1 || part[0].Line != 3 || part[0].Completion.EventID != rows[1].Completion.EventID {
		t.Errorf("part = %+v, %v; want line 3 with row 2's id", part, err)
	}
}

func TestCSVReaderHeader(t *testing.T) {
	f := func(head, want string) {
		t.Helper()
		_, err := readCSV(t, head+"\n", CSVChunk{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("header %q: %v; want an error containing %q", head, err, want)
		}
	}
	f("email,make", "no occurred_at column")
	f("occurred_at,make", "no email column")
	f("email,occurred_at,colour", `column "colour" is not a property of event "viewed_car"`)
	f("email,occurred_at,Make,make", `column "make" appears twice`)
	f("", "empty")
	cat := NewCatalog([]Definition{testDef})
	if _, err := NewCSVReader(cat, "nope", strings.NewReader("email,occurred_at\n"), CSVChunk{}, fixedNow); err == nil {
		t.Error("an unknown event was accepted")
	}
}

// setFilter is an ImportFilter over a set.
type setFilter struct {
	mu     sync.Mutex
	seen   map[string]bool
	begins []string          // "hash run" of each Begin
	runs   map[string]string // file hash → the run that began it first
	stored []bool            // the stored argument of each Known
}

// Begin answers again when another run of the file began before.
func (f *setFilter) Begin(_ context.Context, file [32]byte, run string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fmt.Sprintf("%x", file)
	f.begins = append(f.begins, key+" "+run)
	if f.runs == nil {
		f.runs = map[string]string{}
	}
	first, ok := f.runs[key]
	if !ok {
		f.runs[key] = run
	}
	return ok && first != run, nil
}

// Known also checks that each completion comes with its own row: the id
// ImportID makes of the file and the row is the completion's.
func (f *setFilter) Known(_ context.Context, rows ImportRows, cs []Completion, stored bool) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(rows.Rows) != len(cs) {
		return nil, fmt.Errorf("%d rows for %d completions", len(rows.Rows), len(cs))
	}
	for i, c := range cs {
		if id := ImportID(rows.File, rows.Rows[i]); c.EventID != id {
			return nil, fmt.Errorf("completion %d: id %s, but row %d's is %s", i, c.EventID, rows.Rows[i], id)
		}
	}
	f.stored = append(f.stored, stored)
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	out := make([]bool, len(cs))
	for i, c := range cs {
		out[i] = f.seen[c.EventID]
		f.seen[c.EventID] = true
	}
	return out, nil
}

func (f *setFilter) Forget(_ ImportRows, cs []Completion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.seen, c.EventID)
	}
}

func TestPostImports(t *testing.T) {
	h := &apiHarness{sink: &fakeSink{}, rej: &fakeRejections{}}
	filter := &setFilter{}
	c, err := NewCollector(Config{
		Tokens:      []Token{{Name: "crm", Token: testToken}, {Name: "bi", Token: readToken, Scopes: []string{ScopeRead}}},
		Definitions: []Definition{testDef},
		Pipeline:    NewPipeline(PipelineConfig{Sink: h.sink}), Rejections: h.rej,
		Import: ImportConfig{Pipeline: NewPipeline(PipelineConfig{Sink: h.sink}), Filter: filter},
		Now:    func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	var b strings.Builder
	b.WriteString("email,occurred_at,make,year\n")
	for i := range 2500 {
		fmt.Fprintf(&b, "u%d@example.com,2026-01-%02dT10:00:00Z,volvo,%d\n", i, 1+i%28, 2000+i%20)
	}
	b.WriteString("bad,2026-01-01,volvo,2020\n")
	post := func(token string) (int, ImportSummary, string) {
		resp, body := h.do(t, "POST", "/imports?event=viewed_car", token, b.String())
		var s ImportSummary
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, s, string(body)
	}
	code, s, body := post(testToken)
	if code != 200 || s.Imported != 2500 || s.Duplicates != 0 || s.Rejected != 1 || s.ByReason["INVALID_EMAIL"] != 1 ||
		len(s.Errors) != 1 || s.Errors[0].Line != 2502 {
		t.Fatalf("first import: %d %s", code, body)
	}
	if len(h.sink.got) != 2500 || h.sink.got[0].Source != SourceImport {
		t.Fatalf("sink holds %d completions (first %+v)", len(h.sink.got), h.sink.got[0])
	}
	if len(h.rej.got) != 1 || h.rej.got[0].Source != SourceImport || h.rej.got[0].Reason != "INVALID_EMAIL" {
		t.Errorf("rejections = %+v", h.rej.got)
	}
	code, s, body = post(testToken)
	if code != 200 || s.Imported != 0 || s.Duplicates != 2500 || len(h.sink.got) != 2500 {
		t.Errorf("second import of the same file: %d %s; want every row a duplicate", code, body)
	}
	if code, _, body := post(readToken); code != 403 {
		t.Errorf("read-only token: %d %s; want 403", code, body)
	}
	// Each request without a run id is a run of its own; one with an id
	// tells its run, so that the filter looks among stored rows only for
	// a file imported before.
	// The first run of the file looks only in memory; the second among the
	// stored rows too.
	if fmt.Sprint(filter.stored) != "[false true]" {
		t.Errorf("Known's stored argument in the two runs: %v; want [false true]", filter.stored)
	}
	if len(filter.begins) != 2 || filter.begins[0] == filter.begins[1] ||
		!strings.HasPrefix(filter.begins[0], fmt.Sprintf("%x ", sha256.Sum256([]byte(b.String())))) {
		t.Errorf("Begin calls %q; want two with the file's hash and distinct runs", filter.begins)
	}
	file := "email,occurred_at\na@example.com,2026-01-01T00:00:00Z\n"
	if resp, body := h.do(t, "POST", "/imports?event=viewed_car&run=run-1", testToken, file); resp.StatusCode != 200 ||
		filter.begins[len(filter.begins)-1] != fmt.Sprintf("%x run-1", sha256.Sum256([]byte(file))) {
		t.Errorf("import with a run id: %d %s; Begin calls %q", resp.StatusCode, body, filter.begins)
	}
	if resp, body := h.do(t, "POST", "/imports?event=viewed_car&run="+strings.Repeat("r", 65), testToken, file); resp.StatusCode != 400 ||
		!strings.Contains(string(body), "run must be at most 64 characters") {
		t.Errorf("a 65-character run id: %d %s; want 400", resp.StatusCode, body)
	}
	resp, body2 := h.do(t, "POST", "/imports?event=viewed_car", testToken, "email,colour\n")
	if resp.StatusCode != 400 || !strings.Contains(string(body2), "colour") {
		t.Errorf("bad header: %d %s", resp.StatusCode, body2)
	}
}

// BenchmarkCSVReader reads rows shaped like BenchmarkImport's (cmd/tally):
// an email, a time in epoch ms, two properties and hs_page_url.
func BenchmarkCSVReader(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("email,occurred_at,make,year,hs_page_url\n")
	const rows = 10_000
	for i := range rows {
		fmt.Fprintf(&sb, "person%d@example.com,%d,volvo,%d,https://shop.example.com/cars/%d\n", i, 1764383405353+int64(i)*31_000, 1990+i%35, i)
	}
	file := sb.String()
	cat := NewCatalog([]Definition{testDef})
	b.SetBytes(int64(len(file)) / rows)
	b.ReportAllocs()
	var x *CSVReader
	for i := 0; b.Loop(); i++ {
		if i%rows == 0 {
			var err error
			if x, err = NewCSVReader(cat, "viewed_car", strings.NewReader(file), CSVChunk{FirstRow: 1, FirstLine: 2}, fixedNow); err != nil {
				b.Fatal(err)
			}
		}
		r, err := x.Next()
		if err != nil || len(r.Errors) > 0 {
			b.Fatal(err, r.Errors)
		}
	}
}

func TestImportIDIsUUIDv5(t *testing.T) {
	for _, row := range []int{1, 9, 10, 4711, MaxImportRows} {
		for _, file := range []string{"", "file", "email,occurred_at\na@b.c,0\n"} {
			h := sha256.Sum256([]byte(file))
			want := uuid.NewSHA1(importNamespace, append(h[:], strconv.Itoa(row)...)).String()
			if got := ImportID(h, row); got != want {
				t.Errorf("ImportID(%q, %d) = %s, want uuid.NewSHA1's %s", file, row, got, want)
			}
		}
	}
}

// FuzzCSVPropertiesAsAPI holds the CSV reader's property checks, made with
// the header's names sorted once per file, to the API's (ApplyProperties
// on the row's cells as sent): the same properties, standard fields and
// problems, for any values.
func FuzzCSVPropertiesAsAPI(f *testing.F) {
	f.Add("2020", "volvo", "https://shop.example.com/1", "", "a")
	f.Add("many", "", "", strings.Repeat("ü", 1025), "")
	f.Add(" 007 ", strings.Repeat("x", 257), "not a url", "", strings.Repeat("ü", 300))
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, year, make, pageURL, listingURL, shareLink string) {
		names := []string{"year", "make", "hs_page_url", "listing_url", "share_link"}
		cells := []string{year, make, pageURL, listingURL, shareLink}
		var file strings.Builder
		w := csv.NewWriter(&file)
		_ = w.Write(append([]string{"email", "occurred_at"}, names...))
		_ = w.Write(append([]string{"ada@example.com", "1767225600000"}, cells...))
		w.Flush()
		rows, err := readCSV(t, file.String(), CSVChunk{})
		if err != nil {
			t.Skip("a row csv does not read back as written")
		}
		if len(rows) != 1 {
			t.Skipf("%d rows: a cell's line break read as a row end", len(rows))
		}
		// The cells as a CSV reader gives them back ("\r\n" in a quoted
		// cell reads as "\n").
		recs, err := csv.NewReader(strings.NewReader(file.String())).ReadAll()
		if err != nil || len(recs) != 2 {
			t.Fatalf("read back: %v, %d records", err, len(recs))
		}
		var raw []Prop
		for i, v := range recs[1][2:] {
			if v != "" {
				raw = append(raw, Prop{Name: names[i], Value: v})
			}
		}
		var c Completion
		want := ApplyProperties(&c, &testDef, raw, Strict, "properties")
		got := rows[0]
		if len(want) == 0 {
			if len(got.Errors) > 0 || fmt.Sprint(got.Completion.Props) != fmt.Sprint(c.Props) || got.Completion.Page != c.Page {
				t.Errorf("import: %v %v %+v; API: props %v %+v", got.Errors, got.Completion.Props, got.Completion.Page, c.Props, c.Page)
			}
			return
		}
		if fmt.Sprint(got.Errors) != fmt.Sprint(want) {
			t.Errorf("import problems %v; API's %v", got.Errors, want)
		}
	})
}

// Rows the pipeline refuses (a full log) are forgotten by the filter, so
// the retry of the same file imports them rather than counting them as
// duplicates; a bad row between good ones keeps its number.
func TestImportRetryAfterRefusal(t *testing.T) {
	cat := NewCatalog([]Definition{testDef})
	var file strings.Builder
	file.WriteString("email,occurred_at,make\n")
	for i := range 12_000 {
		if i == 7 {
			file.WriteString("not-an-email,2026-01-02,saab\n")
			continue
		}
		fmt.Fprintf(&file, "p%d@example.com,2026-01-02,saab\n", i)
	}
	chunk := CSVChunk{FileHash: sha256.Sum256([]byte(file.String()))}
	sink := &fakeSink{}
	filter := &setFilter{}
	cfg := ImportConfig{Pipeline: NewPipeline(PipelineConfig{Sink: sink}), Filter: filter}
	run := func() (ImportSummary, error) {
		x, err := NewCSVReader(cat, "viewed_car", strings.NewReader(file.String()), chunk, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		return Import(context.Background(), cfg, x, "run-1", func([]Rejection) {})
	}
	// The first 5,000 rows are stored, then the log is full.
	refuse := &countingSink{fakeSink: sink, okWrites: 1}
	cfg.Pipeline = NewPipeline(PipelineConfig{Sink: refuse})
	sum, err := run()
	if !errors.Is(err, ErrFull) || sum.Imported != 5000 {
		t.Fatalf("first run: %+v, %v; want 5,000 imported, then ErrFull", sum, err)
	}
	sum, err = run()
	if err != nil || sum.Imported != 12_000-1-5000 || sum.Duplicates != 5000 || sum.Rejected != 1 {
		t.Errorf("retry: %+v, %v; want the 6,999 refused rows imported, 5,000 duplicates, 1 rejected", sum, err)
	}
	if n := len(sink.got); n != 11_999 {
		t.Errorf("%d completions stored in all; want 11,999", n)
	}
}

// countingSink passes okWrites writes to fakeSink, then refuses one with
// ErrFull, then passes the rest.
type countingSink struct {
	*fakeSink
	okWrites, writes int
}

func (s *countingSink) Write(ctx context.Context, cs []Completion) error {
	s.writes++
	if s.writes == s.okWrites+1 {
		return fmt.Errorf("%w: durable log full", ErrFull)
	}
	return s.fakeSink.Write(ctx, cs)
}

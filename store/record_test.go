package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// everyField is a completion with every field a log record keeps set to a
// value other than its zero value.
func everyField(i int) ingest.Completion {
	c := fullCompletion(i, time.Date(2026, 3, 4, 5, 6, 8, 250*int(time.Millisecond), time.UTC))
	c.Enrichment.IsBot = true
	c.Client.IP = "203.0.113.77" // the full IP: the log keeps it
	c.Identity = ingest.Identity{Email: "a@example.com", Phone: "+4912345", ExternalID: "crm-1", FirstName: "ada", LastName: "lovelace",
		City: "london", State: "ldn", Zip: "n1", Country: "gb", Fbp: "fb.1.1.1", Fbc: "fb.1.1.abc"}
	c.Consent = ingest.Consent{Analytics: true, Ads: true}
	c.Debug, c.Mirror = true, []string{"leads=sent", "*=gpc"}
	return c
}

func TestRecordRoundTrip(t *testing.T) {
	in := []ingest.Completion{everyField(1), {EventID: "bare", EventName: "e"}, everyField(2)}
	in[2].Consent.Ads = false
	in[2].Enrichment.IsBot = false
	rec := AppendRecord(nil, in)
	got, err := DecodeRecord(nil, rec)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("DecodeRecord(AppendRecord(cs)) =\n%+v\nwant\n%+v", got, in)
	}
}

// TestRecordCoversEveryField fails when a Completion field is neither in a
// log record nor listed here as deliberately left out: a new field must be
// kept by the log or forwarding and storage would lose it after a restart.
func TestRecordCoversEveryField(t *testing.T) {
	c := everyField(3)
	got, err := DecodeRecord(nil, AppendRecord(nil, []ingest.Completion{c}))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		if a.Kind() == reflect.Struct && a.Type() != reflect.TypeOf(time.Time{}) {
			for i := range a.NumField() {
				walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
			return
		}
		if a.IsZero() {
			t.Errorf("test completion leaves %s zero; set it so the round trip checks it", path)
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			t.Errorf("%s = %v after the log; want %v", path, b.Interface(), a.Interface())
		}
	}
	walk("Completion", reflect.ValueOf(c), reflect.ValueOf(got[0]))
}

func TestDecodeRecordRefusesDamage(t *testing.T) {
	good := AppendRecord(nil, []ingest.Completion{everyField(1)})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"cut":         good[:len(good)-3],
		"extra bytes": append(append([]byte{}, good...), 0),
	} {
		if _, err := DecodeRecord(nil, b); !errors.Is(err, errRecord) {
			t.Errorf("DecodeRecord(%s) = %v; want errRecord", name, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, []ingest.Completion{everyField(1), {EventID: "x"}}))
	f.Add([]byte{1, 1, 3, 10, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeRecord(nil, b)
		if err != nil {
			return
		}
		// What decodes must encode to something that decodes the same.
		again, err := DecodeRecord(nil, AppendRecord(nil, cs))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if len(again) != len(cs) {
			t.Fatalf("re-encoded record has %d completions; want %d", len(again), len(cs))
		}
	})
}

func BenchmarkRecord(b *testing.B) {
	cs := make([]ingest.Completion, 10)
	for i := range cs {
		cs[i] = everyField(i)
	}
	var buf []byte
	var out []ingest.Completion
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], cs)
		var err error
		if out, err = DecodeRecord(out[:0], buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

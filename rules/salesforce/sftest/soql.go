package sftest

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

func parseForm(body []byte) (map[string]string, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, vs := range v {
		out[k] = vs[0]
	}
	return out, nil
}

// The one query shape tally may send: contacts or unconverted leads by a
// list of emails, newest first. Anything else is refused as Salesforce
// refuses a malformed query.
var queryShape = regexp.MustCompile(`^SELECT Id, Email, CreatedDate FROM (Contact|Lead) WHERE (IsConverted = false AND )?Email IN \((.*)\) ORDER BY CreatedDate DESC, Id DESC$`)

// maxQuery is SOQL's default limit on a statement's length.
const maxQuery = 100_000

func (s *Server) query(q string) (int, any) {
	if len(q) > maxQuery {
		return refuse(400, "MALFORMED_QUERY", "SOQL statements cannot be longer than %d characters", maxQuery)
	}
	m := queryShape.FindStringSubmatch(q)
	if m == nil {
		return refuse(400, "MALFORMED_QUERY", "unexpected query shape: %s", q)
	}
	object, leadFilter := m[1], m[2] != ""
	if object == "Contact" && leadFilter {
		return refuse(400, "INVALID_FIELD", "No such column 'IsConverted' on entity 'Contact'")
	}
	emails, err := literals(m[3])
	if err != nil {
		return refuse(400, "MALFORMED_QUERY", "%v", err)
	}
	s.mu.Lock()
	var ps []person
	if object == "Contact" {
		ps = append(ps, s.contacts...)
	} else {
		for _, p := range s.leads {
			if !leadFilter || !p.converted {
				ps = append(ps, p)
			}
		}
	}
	s.mu.Unlock()
	var hits []person
	for _, p := range ps {
		for _, e := range emails {
			if strings.EqualFold(p.email, e) { // SOQL compares text ignoring case
				hits = append(hits, p)
				break
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if !hits[i].created.Equal(hits[j].created) {
			return hits[i].created.After(hits[j].created)
		}
		return hits[i].id > hits[j].id
	})
	records := []map[string]any{}
	for _, p := range hits {
		records = append(records, map[string]any{
			"attributes":  map[string]string{"type": object, "url": "/services/data/" + s.cfg.APIVersion + "/sobjects/" + object + "/" + p.id},
			"Id":          p.id,
			"Email":       p.email,
			"CreatedDate": p.created.UTC().Format("2006-01-02T15:04:05.000+0000"),
		})
	}
	return 200, map[string]any{"totalSize": len(records), "done": true, "records": records}
}

// literals parses a comma-separated list of SOQL string literals: single
// quotes, with \' \" \\ \n \r \t \b \f as the only escapes.
func literals(s string) ([]string, error) {
	var out []string
	for {
		if !strings.HasPrefix(s, "'") {
			return nil, errors.New("expected a quoted string in the IN list")
		}
		var b strings.Builder
		i := 1
		for ; ; i++ {
			if i >= len(s) {
				return nil, errors.New("unterminated string literal")
			}
			c := s[i]
			if c == '\'' {
				break
			}
			if c == '\\' {
				i++
				if i >= len(s) {
					return nil, errors.New("unterminated escape")
				}
				r, ok := map[byte]byte{'\'': '\'', '"': '"', '\\': '\\', 'n': '\n', 'r': '\r', 't': '\t', 'b': '\b', 'f': '\f'}[s[i]]
				if !ok {
					return nil, errors.New(`invalid escape sequence \` + string(s[i]))
				}
				b.WriteByte(r)
				continue
			}
			if c == '\n' || c == '\r' {
				return nil, errors.New("unescaped line break in a string literal")
			}
			b.WriteByte(c)
		}
		out = append(out, b.String())
		s = s[i+1:]
		if s == "" {
			return out, nil
		}
		rest, ok := strings.CutPrefix(s, ", ")
		if !ok {
			return nil, errors.New("expected , between strings of the IN list")
		}
		s = rest
	}
}

// taskFields are the Task fields tally may set, with their lengths in
// characters (0: not text) and picklist values (nil: any).
var taskFields = map[string]struct {
	max      int
	picklist []string
}{
	"Subject":      {255, nil},
	"Description":  {32_000, nil},
	"ActivityDate": {0, nil},
	"Status":       {0, []string{"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}},
	"Priority":     {0, []string{"High", "Normal", "Low"}},
	"Type":         {0, []string{"Call", "Email", "Meeting", "Other"}},
	"WhoId":        {0, nil},
}

// length counts characters as Salesforce does (UTF-16 code units).
func length(s string) int { return len(utf16.Encode([]rune(s))) }

func dateOnly(v string) bool {
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}

package sftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// maxRecords is sObject Collections' limit per request.
const maxRecords = 200

type result struct {
	ID      string        `json:"id,omitempty"`
	Success bool          `json:"success"`
	Created bool          `json:"created"`
	Errors  []recordError `json:"errors"`
}

// recordError is one error of one record in an sObject Collections answer.
type recordError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// upsert serves PATCH /composite/sobjects/<Object>/<ExternalIdField>.
func (s *Server) upsert(rest, contentType string, body []byte) (int, any) {
	object, field, ok := strings.Cut(rest, "/")
	if !ok || object != "Task" {
		return refuse(400, "INVALID_TYPE", "tally's stand-in knows only Task; got %q", object)
	}
	if field != s.cfg.ExternalIDField {
		return refuse(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: %s", field)
	}
	if !strings.HasPrefix(contentType, "application/json") {
		return refuse(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type %q is not supported", contentType)
	}
	var req struct {
		AllOrNone *bool             `json:"allOrNone"`
		Records   []json.RawMessage `json:"records"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return refuse(400, "JSON_PARSER_ERROR", "%v", err)
	}
	if len(req.Records) == 0 {
		return refuse(400, "INVALID_FIELD", "records is empty")
	}
	if len(req.Records) > maxRecords {
		return refuse(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than %d records into this call", maxRecords)
	}
	allOrNone := req.AllOrNone != nil && *req.AllOrNone
	recs := make([]map[string]any, len(req.Records))
	for i, raw := range req.Records {
		if err := json.Unmarshal(raw, &recs[i]); err != nil {
			return refuse(400, "JSON_PARSER_ERROR", "records[%d]: %v", i, err)
		}
		attrs, _ := recs[i]["attributes"].(map[string]any)
		if attrs == nil || attrs["type"] != "Task" {
			return refuse(400, "INVALID_TYPE", "records[%d]: each record needs attributes.type Task", i)
		}
		keys := make([]string, 0, len(recs[i]))
		for k := range recs[i] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "attributes" || k == field {
				continue
			}
			if k == "Id" {
				return refuse(400, "INVALID_FIELD", "records[%d]: an upsert by external id must not set Id", i)
			}
			if _, ok := taskFields[k]; !ok {
				return refuse(400, "INVALID_FIELD", "No such column '%s' on sobject of type Task", k)
			}
			if _, isString := recs[i][k].(string); !isString {
				return refuse(400, "JSON_PARSER_ERROR", "records[%d].%s: expected a string", i, k)
			}
			if k == "ActivityDate" && !dateOnly(recs[i][k].(string)) {
				return refuse(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of date from VALUE_STRING value %s", recs[i][k])
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]result, len(recs))
	for i, r := range recs {
		if errs := s.validate(r, field); len(errs) > 0 {
			out[i] = result{Errors: errs}
			continue
		}
		ext := r[field].(string)
		fields := map[string]any{}
		for k, v := range r {
			if k != "attributes" {
				fields[k] = v
			}
		}
		if t, ok := s.tasks[ext]; ok {
			for k, v := range fields {
				t.Fields[k] = v
			}
			t.Updates++
			out[i] = result{ID: t.ID, Success: true, Errors: []recordError{}}
			continue
		}
		t := &Task{ID: s.newID("00T"), Fields: fields}
		s.tasks[ext] = t
		s.creates++
		out[i] = result{ID: t.ID, Success: true, Created: true, Errors: []recordError{}}
	}
	if allOrNone && slices.ContainsFunc(out, func(r result) bool { return !r.Success }) {
		return 400, out // the stand-in does not roll back; tally never asks for allOrNone
	}
	return 200, out
}

// validate checks one record as Salesforce's field validation does, with
// the errors it answers per record.
func (s *Server) validate(r map[string]any, extField string) []recordError {
	var errs []recordError
	bad := func(code, field, format string, args ...any) {
		errs = append(errs, recordError{StatusCode: code, Message: fmt.Sprintf(format, args...), Fields: []string{field}})
	}
	ext, _ := r[extField].(string)
	switch {
	case ext == "":
		bad("REQUIRED_FIELD_MISSING", extField, "Required fields are missing: [%s]", extField)
	case length(ext) > 255:
		bad("STRING_TOO_LONG", extField, "%s: data value too large (max length=255)", extField)
	}
	if _, ok := r["Status"]; !ok {
		bad("REQUIRED_FIELD_MISSING", "Status", "Required fields are missing: [Status]")
	}
	for k, v := range r {
		spec, ok := taskFields[k]
		if !ok {
			continue
		}
		sv := v.(string)
		if spec.max > 0 && length(sv) > spec.max {
			bad("STRING_TOO_LONG", k, "%s: data value too large: %.20s... (max length=%d)", k, sv, spec.max)
		}
		if spec.picklist != nil && !slices.Contains(spec.picklist, sv) {
			bad("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", k, "%s: bad value for restricted picklist field: %s", k, sv)
		}
	}
	who, _ := r["WhoId"].(string)
	switch {
	case who == "":
	case !validID(who):
		bad("MALFORMED_ID", "WhoId", "Name ID: id value of incorrect type: %s", who)
	case strings.HasPrefix(who, "003"):
		if !s.exists(s.contacts, who) {
			bad("INVALID_CROSS_REFERENCE_KEY", "WhoId", "invalid cross reference id")
		}
	case strings.HasPrefix(who, "00Q"):
		if !s.exists(s.leads, who) {
			bad("INVALID_CROSS_REFERENCE_KEY", "WhoId", "invalid cross reference id")
		}
	default:
		bad("FIELD_INTEGRITY_EXCEPTION", "WhoId", "Name ID: id value of incorrect type: %s", who)
	}
	return errs
}

func (s *Server) exists(ps []person, id string) bool {
	for _, p := range ps {
		if p.id[:15] == id[:15] {
			return true
		}
	}
	return false
}

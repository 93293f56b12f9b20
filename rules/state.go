package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of the engine's state file inside Config.DataDir.
const StateFile = "rules-state.json"

// RuleState is when an enabled rule, in the form its Hash identifies, was
// enabled.
type RuleState struct {
	Hash      string
	EnabledAt time.Time
}

// StateStore keeps the rules' enabled-at times where every collector that
// forwards sees them: a file under DataDir for one collector (the default),
// a ClickHouse table for several (main's choice, store.RuleStates). Save
// writes the whole set: rules missing from it are forgotten. When several
// collectors save different times for the same rule and hash at once, the
// store keeps the earliest, and Load returns it to all of them.
type StateStore interface {
	LoadRuleStates() (map[string]RuleState, error)
	SaveRuleStates(map[string]RuleState) error
}

// fileState is the StateStore of one collector: a JSON file.
type fileState struct{ path string }

func (f fileState) LoadRuleStates() (map[string]RuleState, error) {
	st, err := loadState(f.path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]RuleState, len(st.Rules))
	for name, r := range st.Rules {
		out[name] = RuleState{Hash: r.Hash, EnabledAt: r.EnabledAt}
	}
	return out, nil
}

func (f fileState) SaveRuleStates(rs map[string]RuleState) error {
	st := state{Version: 1, Rules: make(map[string]ruleRecord, len(rs))}
	for name, r := range rs {
		st.Rules[name] = ruleRecord{Hash: r.Hash, EnabledAt: r.EnabledAt}
	}
	return saveState(f.path, st)
}

// state is what the engine remembers across restarts: when each enabled
// rule, in its current form, was enabled. A rule whose when or forward
// changes counts as newly enabled, so an edit never reaches back to
// completions received under the old definition.
type state struct {
	Version int                   `json:"version"`
	Rules   map[string]ruleRecord `json:"rules"`
}

type ruleRecord struct {
	Hash      string    `json:"hash"` // of the rule's when and forward
	EnabledAt time.Time `json:"enabled_at"`
}

// ruleHash identifies a rule's behaviour: its when and forward, not its
// name or enabled flag.
func ruleHash(r *Rule) (string, error) {
	b, err := json.Marshal(struct {
		When    When
		Forward Forward
	}{r.When, r.Forward})
	if err != nil {
		return "", fmt.Errorf("encode rule %q: %w", r.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

func loadState(path string) (state, error) {
	s := state{Version: 1, Rules: map[string]ruleRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read rules state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse rules state %s: %w", path, err)
	}
	if s.Rules == nil {
		s.Rules = map[string]ruleRecord{}
	}
	return s, nil
}

// saveState writes the state atomically: a synced temporary file renamed
// over the old one, then the directory synced, so a crash leaves either
// the old or the new state, never a torn one.
func saveState(path string, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode rules state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create rules state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".rules-state-*")
	if err != nil {
		return fmt.Errorf("write rules state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this is a no-op
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write rules state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync rules state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write rules state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace rules state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync rules state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync rules state dir: %w", err)
	}
	return nil
}

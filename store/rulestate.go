package store

import (
	"context"
	"fmt"
	"time"
)

// RuleState is a rule's row of rule_state.
type RuleState struct {
	Hash      string
	EnabledAt time.Time
}

// RuleStates keeps the rules' enabled-at times in the rule_state table, so
// every collector of a database forwards from the same moment. main adapts
// it to rules.StateStore.
type RuleStates struct {
	conn Conn
	db   string
	ctx  context.Context
}

// NewRuleStates returns the rule_state table of database (migrated).
func NewRuleStates(ctx context.Context, conn Conn, database string) *RuleStates {
	return &RuleStates{conn: conn, db: quoteIdent(database), ctx: ctx}
}

// Load returns the current state of every rule not removed.
func (r *RuleStates) Load() (map[string]RuleState, error) {
	rows, err := r.conn.Query(r.ctx, "SELECT rule, hash, enabled_ns FROM "+r.db+".rule_state FINAL WHERE removed = 0")
	if err != nil {
		return nil, fmt.Errorf("read rule_state: %w", err)
	}
	defer rows.Close()
	out := map[string]RuleState{}
	for rows.Next() {
		var name, hash string
		var ns uint64
		if err := rows.Scan(&name, &hash, &ns); err != nil {
			return nil, fmt.Errorf("read rule_state: %w", err)
		}
		out[name] = RuleState{Hash: hash, EnabledAt: time.Unix(0, int64(ns)).UTC()}
	}
	return out, rows.Err()
}

// Save makes the table hold exactly want: rows for rules new or changed,
// and removed rows for rules no longer in want.
func (r *RuleStates) Save(want map[string]RuleState) error {
	have, err := r.Load()
	if err != nil {
		return err
	}
	b, err := r.conn.PrepareBatch(r.ctx, "INSERT INTO "+r.db+".rule_state (rule, hash, enabled_ns, removed, version)")
	if err != nil {
		return fmt.Errorf("write rule_state: %w", err)
	}
	defer b.Close()
	version := uint64(time.Now().UnixNano())
	n := 0
	for name, s := range want {
		if h, ok := have[name]; ok && h.Hash == s.Hash && h.EnabledAt.Equal(s.EnabledAt) {
			continue
		}
		if err := b.Append(name, s.Hash, uint64(s.EnabledAt.UnixNano()), uint8(0), version); err != nil {
			return fmt.Errorf("write rule_state: %w", err)
		}
		n++
	}
	for name, s := range have {
		if _, ok := want[name]; !ok {
			if err := b.Append(name, s.Hash, uint64(s.EnabledAt.UnixNano()), uint8(1), version); err != nil {
				return fmt.Errorf("write rule_state: %w", err)
			}
			n++
		}
	}
	if n == 0 {
		return b.Abort()
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write rule_state: %w", err)
	}
	return nil
}

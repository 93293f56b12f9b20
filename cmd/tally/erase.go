package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// eraseCmd asks the running tally to erase a person: it owns the durable
// log and the outbox, so the erasure happens there, through the admin
// listener's POST /privacy/erase.
func eraseCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("erase", stderr)
	email := fs.String("email", "", "the person's email")
	visitor := fs.String("visitor", "", "a visitor id (first-party cookie id or utk)")
	external := fs.String("external-id", "", "the person's external id")
	token := fs.String("token", os.Getenv("TALLY_ERASE_TOKEN"), "an api_tokens token whose scopes include erase (default $TALLY_ERASE_TOKEN)")
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	if *email == "" && *visitor == "" && *external == "" {
		return fmt.Errorf("%w: give -email, -visitor or -external-id", errUsage)
	}
	body, _ := json.Marshal(map[string]string{"email": *email, "visitor_id": *visitor, "external_id": *external})
	b, err := adminPost(ctx, cfg.AdminAddr(), "/privacy/erase", *token, body)
	if err != nil {
		return err
	}
	var counts map[string]uint64
	if err := json.Unmarshal(b, &counts); err != nil {
		return fmt.Errorf("erase: unexpected answer %s", b)
	}
	fmt.Fprintln(stdout, "erased:")
	for _, k := range []string{"events", "rejections", "deliveries", "identities", "outbox", "log"} {
		fmt.Fprintf(stdout, "  %-11s %d\n", k, counts[k])
	}
	return nil
}

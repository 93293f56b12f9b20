package rules

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/deliver"
)

// kind is what the rules know of one destination type: how its config
// block and a rule's forward to it are checked, how a matching completion
// maps onto items, and how its sender is built. Adding a destination type
// is a package with its sender and mapping, and one entry in kinds.
type kind struct {
	// ads: an ad platform. Its rules need the visitor's ads consent, and
	// forward's Meta fields (event_name, share, value…) are its own.
	ads bool
	// checkDest checks the destination's own block.
	checkDest func(c *checker, path string, d *Destination)
	// checkForward checks forward for a destination of this type (the
	// common to and consent are checked before).
	checkForward func(c *checker, path string, fw *Forward, d Destination, defs []*ingest.Definition)
	// mapItems maps a matching completion: the items to enqueue, and those
	// refused before sending (recorded with their status).
	mapItems func(r *compiled, c *ingest.Completion, now time.Time) ([]deliver.Item, []refusal)
	// name is what the destination calls a completion's item, for rows of
	// matches that are not sent (skipped_consent…).
	name func(r *compiled, c *ingest.Completion) string
	// open builds the delivery engine's destination; hc nil means a default
	// client.
	open func(d Destination, hc *http.Client) (deliver.Destination, error)
}

// refusal is an item mapped but never enqueued, and why.
type refusal struct {
	item    deliver.Item
	status  string
	message string
}

// kinds are the destination types, by their type name in tally.yaml.
var kinds = map[string]kind{
	TypeMetaCAPI: {
		ads:       true,
		checkDest: (*checker).checkMetaDestination,
		mapItems:  metaItems,
		name:      func(r *compiled, _ *ingest.Completion) string { return r.rule.Forward.EventName },
		open:      openMeta,
	},
}

func kindNames() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// kind is the type of the rule's destination.
func (r *compiled) kind() kind { return kinds[r.dest.Type] }

// forwardName is what the destination calls c's item.
func (r *compiled) forwardName(c *ingest.Completion) string { return r.kind().name(r, c) }

// checkForwardOf checks a rule's forward: for Meta (or an unknown
// destination) every Meta rule, for the other types the common fields and
// their own.
func (c *checker) checkForwardOf(path string, fw *Forward, dests map[string]Destination, defs []*ingest.Definition) (Destination, *filter) {
	dest, ok := dests[fw.To]
	k, known := kinds[dest.Type]
	if !ok || !known || k.ads {
		return c.checkForward(path, fw, dests, defs)
	}
	metaOnly := map[string]bool{
		"event_name_from": fw.EventNameFrom != nil, "value": fw.Value != nil, "currency": fw.Currency != "",
		"share": len(fw.Share) > 0, "mirror_in_browser": fw.MirrorInBrowser, "lead_id": fw.LeadID != nil,
		"custom_data": len(fw.CustomData) > 0, "action_source": fw.ActionSource != "",
	}
	keys := make([]string, 0, len(metaOnly))
	for f, set := range metaOnly {
		if set {
			keys = append(keys, f)
		}
	}
	slices.Sort(keys)
	for _, f := range keys {
		c.add(path+"."+f, "UNEXPECTED_FIELD", "%s is for %s destinations; %q is %s", f, TypeMetaCAPI, dest.Name, dest.Type)
	}
	k.checkForward(c, path, fw, dest, defs)
	return dest, c.consentGate(path+".consent", fw.Consent, defs)
}

// metaItems maps c onto the rule's Meta events; an event Meta would refuse
// (no event_source_url on a website event, …) is refused here, as failed
// (or expired when too old), so it never sinks a batch.
func metaItems(r *compiled, c *ingest.Completion, now time.Time) ([]deliver.Item, []refusal) {
	var (
		items   []deliver.Item
		refused []refusal
	)
	for _, ev := range r.mapped(c) {
		if err := capi.Validate(&ev, now); err != nil {
			st := deliver.StatusFailed
			if errors.Is(err, capi.ErrTooOld) {
				st = deliver.StatusExpired
			}
			refused = append(refused, refusal{item: capi.Item(ev), status: st, message: err.Error()})
			continue
		}
		items = append(items, capi.Item(ev))
	}
	return items, refused
}

func openMeta(d Destination, hc *http.Client) (deliver.Destination, error) {
	d = d.WithDefaults()
	client, err := capi.NewClient(capi.ClientConfig{GraphURL: d.GraphURL, APIVersion: d.APIVersion, PixelID: d.PixelID,
		AccessToken: d.AccessToken, TestEventCode: d.TestEventCode, PartnerAgent: d.PartnerAgent}, hc)
	if err != nil {
		return deliver.Destination{}, err
	}
	return capi.Destination(d.Name, client), nil
}

// OpenDestinations builds the delivery engine's destination for each
// configured one (a config that passed Check); hc nil means a default
// client.
func OpenDestinations(ds []Destination, hc *http.Client) ([]deliver.Destination, error) {
	out := make([]deliver.Destination, 0, len(ds))
	for _, d := range ds {
		k, ok := kinds[d.Type]
		if !ok {
			return nil, fmt.Errorf("destination %q: unknown type %q", d.Name, d.Type)
		}
		dd, err := k.open(d, hc)
		if err != nil {
			return nil, fmt.Errorf("destination %q: %w", d.Name, err)
		}
		out = append(out, dd)
	}
	return out, nil
}

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
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/webhook"
)

// kind is what the rules know of one destination type: how its config
// block and a rule's forward to it are checked, how a matching completion
// maps onto items, and how its sender is built. Adding a destination type
// is a package with its sender and mapping, and one entry in kinds.
type kind struct {
	// ads: an ad platform. Its rules need the visitor's ads consent, and
	// forward's Meta fields (event_name, share, value…) are its own.
	ads bool
	// shares: forward.share says which identity fields it gets.
	shares bool
	// checkDest checks the destination's own block.
	checkDest func(c *checker, path string, d *Destination)
	// checkForward checks forward for a destination of this type (the
	// common to and consent are checked elsewhere) and returns what
	// mapItems needs of it (compiled.mapping).
	checkForward func(c *checker, path string, fw *Forward, d Destination, defs []*ingest.Definition) any
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
	salesforce.Type: {
		checkDest:    checkSalesforce,
		checkForward: checkTask,
		mapItems: func(r *compiled, c *ingest.Completion, now time.Time) ([]deliver.Item, []refusal) {
			it, status, msg := r.mapping.(*salesforce.Mapping).Map(c, now)
			if status != "" {
				return nil, []refusal{{item: deliver.Item{Name: salesforce.ItemName}, status: status, message: msg}}
			}
			return []deliver.Item{it}, nil
		},
		name: func(*compiled, *ingest.Completion) string { return salesforce.ItemName },
		open: func(d Destination, hc *http.Client) (deliver.Destination, error) {
			client, err := salesforce.NewClient(*d.Salesforce, hc)
			if err != nil {
				return deliver.Destination{}, err
			}
			return salesforce.Destination(d.Name, client), nil
		},
	},
	webhook.Type: {
		shares:    true,
		checkDest: checkWebhook,
		checkForward: func(c *checker, path string, fw *Forward, _ Destination, _ []*ingest.Definition) any {
			if fw.EventName != "" {
				c.add(path+".event_name", "UNEXPECTED_FIELD", "a webhook sends the completion's own event name; remove event_name")
			}
			c.checkShare(path, fw.Share)
			return nil
		},
		mapItems: func(r *compiled, c *ingest.Completion, _ time.Time) ([]deliver.Item, []refusal) {
			return []deliver.Item{webhook.Map(c, r.name, r.sharedIdentity(c))}, nil
		},
		name: func(_ *compiled, c *ingest.Completion) string { return c.EventName },
		open: func(d Destination, hc *http.Client) (deliver.Destination, error) {
			client, err := webhook.NewClient(*d.Webhook, hc)
			if err != nil {
				return deliver.Destination{}, err
			}
			return webhook.Destination(d.Name, *d.Webhook, client), nil
		},
	},
}

func checkWebhook(c *checker, path string, d *Destination) {
	if !c.block(path, d, "webhook", d.Webhook != nil) {
		return
	}
	c.addAll(path+".webhook.", d.Webhook.Check())
}

// sharedIdentity is what the rule shares of c's identity, as it is.
func (r *compiled) sharedIdentity(c *ingest.Completion) map[string]string {
	all := map[string]string{
		ShareEmail: c.Identity.Email, SharePhone: c.Identity.Phone, ShareFirstName: c.Identity.FirstName, ShareLastName: c.Identity.LastName,
		ShareCity: c.Identity.City, ShareState: c.Identity.State, ShareZip: c.Identity.Zip, ShareCountry: c.Identity.Country,
		ShareExternalID: c.Identity.ExternalID, ShareClientIP: c.Client.IP, ShareUserAgent: c.Client.UserAgent,
		ShareFbp: c.Identity.Fbp, ShareFbc: c.Identity.Fbc,
	}
	out := map[string]string{}
	for _, s := range r.rule.Forward.Share {
		out[s] = all[s]
	}
	return out
}

// block checks that d has its type's block (named block; "" for Meta,
// whose fields are d's own) and no other type's fields, and returns
// whether the block is there.
func (c *checker) block(path string, d *Destination, block string, present bool) bool {
	set := map[string]bool{"salesforce": d.Salesforce != nil, "webhook": d.Webhook != nil}
	if d.Type != TypeMetaCAPI {
		for k, v := range map[string]bool{
			"pixel_id": d.PixelID != "", "access_token": d.AccessToken != "", "api_version": d.APIVersion != "", "graph_url": d.GraphURL != "",
			"test_event_code": d.TestEventCode != "", "partner_agent": d.PartnerAgent != "", "mode": d.Mode != "", "lead_event_source": d.LeadEventSource != "",
		} {
			set[k] = v
		}
	}
	delete(set, block)
	for _, k := range setKeys(set) {
		c.add(path+"."+k, "UNEXPECTED_FIELD", "%s does not apply to a %s destination", k, d.Type)
	}
	if !present {
		c.add(path+"."+block, "MISSING_BLOCK", "a %s destination needs its settings under %s:", d.Type, block)
	}
	return present
}

func checkSalesforce(c *checker, path string, d *Destination) {
	if !c.block(path, d, "salesforce", d.Salesforce != nil) {
		return
	}
	c.addAll(path+".salesforce.", d.Salesforce.Check())
}

func checkTask(c *checker, path string, fw *Forward, _ Destination, defs []*ingest.Definition) any {
	if fw.EventName != "" {
		c.add(path+".event_name", "UNEXPECTED_FIELD", "a salesforce task is named by task.subject, not event_name")
	}
	var t salesforce.Task
	if fw.Task != nil {
		t = *fw.Task
	}
	c.addAll(path+".task.", t.Check(defs))
	labels := map[string]string{}
	for _, d := range defs {
		labels[d.Name] = d.Label
	}
	m, err := salesforce.NewMapping(t, labels)
	if err != nil {
		return nil // reported by Check
	}
	return m
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
func (c *checker) checkForwardOf(path string, fw *Forward, dests map[string]Destination, defs []*ingest.Definition) (Destination, *filter, any) {
	dest, ok := dests[fw.To]
	k, known := kinds[dest.Type]
	if !ok || !known || k.ads {
		if fw.Task != nil {
			c.add(path+".task", "UNEXPECTED_FIELD", "task is for %s destinations", salesforce.Type)
		}
		d, consent := c.checkForward(path, fw, dests, defs)
		return d, consent, nil
	}
	metaOnly := map[string]bool{
		"event_name_from": fw.EventNameFrom != nil, "value": fw.Value != nil, "currency": fw.Currency != "",
		"share": len(fw.Share) > 0 && !k.shares, "mirror_in_browser": fw.MirrorInBrowser, "lead_id": fw.LeadID != nil,
		"custom_data": len(fw.CustomData) > 0, "action_source": fw.ActionSource != "",
	}
	for _, f := range setKeys(metaOnly) {
		c.add(path+"."+f, "UNEXPECTED_FIELD", "%s is for %s destinations; %q is %s", f, TypeMetaCAPI, dest.Name, dest.Type)
	}
	if fw.Task != nil && dest.Type != salesforce.Type {
		c.add(path+".task", "UNEXPECTED_FIELD", "task is for %s destinations", salesforce.Type)
	}
	mapping := k.checkForward(c, path, fw, dest, defs)
	return dest, c.consentGate(path+".consent", fw.Consent, defs), mapping
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

// setKeys returns the keys of m whose value is true, sorted.
func setKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

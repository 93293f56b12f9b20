package salesforce

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/tally-analytics/tally/ingest"
)

// Type is the destination type name in tally.yaml.
const Type = "salesforce"

// DefaultAPIVersion is the REST API version used when APIVersion is empty
// (Winter '25). sObject Collections upsert needs 46.0 or later.
const DefaultAPIVersion = "v62.0"

// Config is a salesforce destination's block (destinations[].salesforce).
type Config struct {
	// InstanceURL is the org's My Domain URL, https://acme.my.salesforce.com.
	// API calls go there only (the token answer's instance_url is not
	// followed), so tally talks to no host the config does not name.
	InstanceURL string `yaml:"instance_url"`
	// LoginURL is where tokens are asked for; empty means InstanceURL (the
	// client-credentials flow must use the My Domain).
	LoginURL   string `yaml:"login_url"`
	APIVersion string `yaml:"api_version"`
	// ClientID and ClientSecret are the connected app's consumer key and
	// secret; reference them as ${ENV_NAME}.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RefreshToken selects the refresh-token flow; empty means client
	// credentials (the connected app's run-as user).
	RefreshToken string `yaml:"refresh_token"`
	// ExternalIDField is the Task field, marked External ID, that holds the
	// event id; default Tally_Event_Id__c.
	ExternalIDField string `yaml:"external_id_field"`
}

// DefaultExternalIDField is the Task custom field tally upserts on.
const DefaultExternalIDField = "Tally_Event_Id__c"

// WithDefaults fills the empty optional fields.
func (c Config) WithDefaults() Config {
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.LoginURL == "" {
		c.LoginURL = c.InstanceURL
	}
	if c.ExternalIDField == "" {
		c.ExternalIDField = DefaultExternalIDField
	}
	return c
}

var (
	apiVersionPattern = regexp.MustCompile(`^v[0-9]{2}\.[0-9]$`)
	// customField is a custom field's API name: letters, digits and single
	// underscores, starting with a letter, ending __c.
	customField = regexp.MustCompile(`^[A-Za-z](?:[A-Za-z0-9]|_[A-Za-z0-9])*__c$`)
)

// Check reports every problem of the block, with paths relative to it.
func (c Config) Check() []ingest.FieldError {
	var errs []ingest.FieldError
	add := func(field, code, format string, args ...any) {
		errs = append(errs, ingest.FieldError{Path: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	for _, u := range []struct{ field, v string }{{"instance_url", c.InstanceURL}, {"login_url", c.LoginURL}} {
		if u.v == "" && u.field == "login_url" {
			continue
		}
		p, err := url.Parse(u.v)
		if u.v == "" || err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || strings.Trim(p.Path, "/") != "" {
			add(u.field, "INVALID_URL", "%s %q must be the org's https URL without a path, like https://acme.my.salesforce.com", u.field, u.v)
		}
	}
	if c.APIVersion != "" {
		if !apiVersionPattern.MatchString(c.APIVersion) {
			add("api_version", "INVALID_API_VERSION", "api_version %q must look like %s", c.APIVersion, DefaultAPIVersion)
		} else if c.APIVersion < "v46.0" {
			add("api_version", "INVALID_API_VERSION", "api_version %s is too old: sObject Collections upsert needs v46.0 or later", c.APIVersion)
		}
	}
	if c.ClientID == "" {
		add("client_id", "MISSING_CLIENT_ID", "client_id is required: the connected app's consumer key, as ${ENV_NAME}")
	}
	if c.ClientSecret == "" {
		add("client_secret", "MISSING_CLIENT_SECRET", "client_secret is required: the connected app's consumer secret, as ${ENV_NAME}")
	}
	if c.ExternalIDField != "" && !customField.MatchString(c.ExternalIDField) {
		add("external_id_field", "INVALID_FIELD", "external_id_field %q must be a Task custom field's API name, like %s", c.ExternalIDField, DefaultExternalIDField)
	}
	return errs
}

// Task is a rule's mapping onto a Salesforce task (forward.task).
type Task struct {
	// Subject is a template: text with {{label}}, {{event}}, {{email}},
	// {{url}} or {{<property>}}; default "{{label}}". Cut to 255 characters.
	Subject string `yaml:"subject"`
	// Type is the task's Type picklist value (Call, Email, Meeting,
	// Other…); empty sends none, like HubSpot's "-- No task type --".
	Type string `yaml:"type"`
	// Priority is High, Normal or Low; empty leaves the org's default.
	Priority string `yaml:"priority"`
	// WithinDays forwards only completions at most this many days old
	// (HubSpot: marketing email events 30, form submissions 365); 0 means
	// no limit.
	WithinDays int `yaml:"within_days"`
}

// Task field limits (Salesforce's Task object).
const (
	MaxSubject     = 255
	MaxDescription = 32_000
	maxWithinDays  = 3650
)

// Priorities are the standard Task priority values.
var priorities = []string{"High", "Normal", "Low"}

// Check reports every problem of a rule's task block, with paths relative
// to it, against the rule's event definitions.
func (t Task) Check(defs []*ingest.Definition) []ingest.FieldError {
	var errs []ingest.FieldError
	add := func(field, code, format string, args ...any) {
		errs = append(errs, ingest.FieldError{Path: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if t.Subject != "" {
		tpl, err := ParseTemplate(t.Subject)
		if err != nil {
			add("subject", "INVALID_TEMPLATE", "%v", err)
		}
		for _, name := range tpl.Names() {
			if slices.Contains(builtins, name) {
				continue
			}
			for _, d := range defs {
				if _, ok := d.Property(name); !ok {
					add("subject", "UNKNOWN_PROPERTY", "{{%s}} is neither %s nor a property of event %q", name, strings.Join(builtins, ", "), d.Name)
					break
				}
			}
		}
	}
	if len(t.Type) > 40 {
		add("type", "INVALID_VALUE", "type %q is longer than a picklist value (40 characters)", t.Type)
	}
	if t.Priority != "" && !slices.Contains(priorities, t.Priority) {
		add("priority", "INVALID_VALUE", "priority %q is not one of %s", t.Priority, strings.Join(priorities, ", "))
	}
	if t.WithinDays < 0 || t.WithinDays > maxWithinDays {
		add("within_days", "INVALID_VALUE", "within_days must be between 0 (no limit) and %d", maxWithinDays)
	}
	return errs
}

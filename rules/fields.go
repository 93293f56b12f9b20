package rules

import (
	"slices"
	"strings"

	"github.com/tally-analytics/tally/ingest"
)

// Standard fields a filter can test with field: instead of property:. They
// are the completion's own facts (§7 of the contract), compared as strings
// with the string operations, case ignored.
const (
	FieldURL              = "url"
	FieldPath             = "path"
	FieldReferrer         = "referrer"
	FieldPageTitle        = "page_title"
	FieldUTMSource        = "utm_source"
	FieldUTMMedium        = "utm_medium"
	FieldUTMCampaign      = "utm_campaign"
	FieldUTMTerm          = "utm_term"
	FieldUTMContent       = "utm_content"
	FieldTouchpointSource = "touchpoint_source"
	FieldClickID          = "click_id"
	FieldClickIDParam     = "click_id_param" // gclid, fbclid, msclkid, …
	FieldFbc              = "fbc"
	FieldFbp              = "fbp"
	FieldCountry          = "country"
	FieldRegion           = "region"
	FieldCity             = "city"
	FieldDeviceType       = "device_type"
	FieldBrowser          = "browser"
	FieldOS               = "os"
	FieldSource           = "source" // browser, api, import
	FieldSite             = "site"
)

// standardFields lists every field, in the order hints name them.
var standardFields = []string{
	FieldURL, FieldPath, FieldReferrer, FieldPageTitle, FieldUTMSource, FieldUTMMedium,
	FieldUTMCampaign, FieldUTMTerm, FieldUTMContent, FieldTouchpointSource, FieldClickID,
	FieldClickIDParam, FieldFbc, FieldFbp, FieldCountry, FieldRegion, FieldCity,
	FieldDeviceType, FieldBrowser, FieldOS, FieldSource, FieldSite,
}

// serverOnlyFields are derived on the server (GeoIP, the user-agent parser,
// the touchpoint classifier): the browser cannot know them when it mirrors,
// so a mirrored rule must not filter on them or the pixel and the server
// would disagree.
var serverOnlyFields = []string{
	FieldTouchpointSource, FieldCountry, FieldRegion, FieldCity, FieldDeviceType, FieldBrowser, FieldOS,
}

// fieldProperty is the pseudo-definition a standard field is compiled
// against: a string.
func fieldProperty(name string) (*ingest.Property, bool) {
	if !slices.Contains(standardFields, name) {
		return nil, false
	}
	return &ingest.Property{Name: name, Type: ingest.TypeString}, true
}

// standardField reads a standard field of c; ok is false when it is empty.
func standardField(c *ingest.Completion, name string) (string, bool) {
	var v string
	e := &c.Enrichment
	switch name {
	case FieldURL:
		v = c.Page.URL
	case FieldPath:
		v = e.Path
	case FieldReferrer:
		v = c.Page.Referrer
	case FieldPageTitle:
		v = c.Page.Title
	case FieldUTMSource:
		v = e.UTMSource
	case FieldUTMMedium:
		v = e.UTMMedium
	case FieldUTMCampaign:
		v = e.UTMCampaign
	case FieldUTMTerm:
		v = e.UTMTerm
	case FieldUTMContent:
		v = e.UTMContent
	case FieldTouchpointSource:
		v = e.TouchpointSource
	case FieldClickID:
		v = e.ClickID
	case FieldClickIDParam:
		v = e.ClickIDParam
	case FieldFbc:
		v = c.Identity.Fbc
	case FieldFbp:
		v = c.Identity.Fbp
	case FieldCountry:
		v = e.Country
	case FieldRegion:
		v = e.Region
	case FieldCity:
		v = e.City
	case FieldDeviceType:
		v = e.DeviceType
	case FieldBrowser:
		v = e.Browser
	case FieldOS:
		v = e.OS
	case FieldSource:
		v = string(c.Source)
	case FieldSite:
		v = c.Site
	}
	return v, v != ""
}

// lookup reads what filter f tests on c: a standard field or a property.
func lookup(c *ingest.Completion, f *filter) (string, bool) {
	if f.field {
		return standardField(c, f.prop)
	}
	return c.Prop(f.prop)
}

// describe names what a filter tests, for messages: field url, property form_id.
func (f *filter) describe() string {
	kind := "property"
	if f.field {
		kind = "field"
	}
	return kind + " " + f.prop + " " + string(f.op) + valuesText(f.canon)
}

func valuesText(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return " " + quoteValue(vs[0])
	}
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quoteValue(v)
	}
	return " [" + strings.Join(q, ", ") + "]"
}

func quoteValue(v string) string { return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"` }

package snippet

import (
	"bytes"
	_ "embed"
	"html/template"
)

//go:embed demo/index.html
var demoHTML string

// DemoPage renders the demo page for a site: it embeds the site's tracker
// (loaded from the same origin the page is served from), wires buttons and a
// form to the example config's events, and shows what the tracker sends.
// Serve it at /demo and at every path under /demo/, since its links
// navigate within /demo/cars/… the way a single-page app would.
func DemoPage(site string) []byte {
	var buf bytes.Buffer
	page := template.Must(template.New("demo").Parse(demoHTML))
	err := page.Execute(&buf, struct {
		Site string
		Tags template.HTML
	}{site, template.HTML(Tags(site, ""))})
	if err != nil {
		// The template is fixed and its data are strings: a failure here is
		// a bug in the template, caught by the tests.
		panic(err)
	}
	return buf.Bytes()
}

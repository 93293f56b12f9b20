// Package snippet is tally's browser tracker: its JavaScript source, how a
// per-site script is built from the config (site id, collection path,
// capture triggers, pixel mirror rules baked in, minified by esbuild in
// process) and the tags a site pastes to embed it, plus the demo page.
//
// It builds every site's script once, at construction, and then only hands
// out bytes; it does not serve HTTP itself (ingest's collector serves /t.js
// through the ingest.ScriptSource interface), so it must not import fiber,
// store or rules: mirror rules arrive as opaque JSON-able values from main.
package snippet

// mirror calls the page's Meta pixel for a completion that a rule with
// mirror_in_browser matches, with the same event name and event id the
// server forwards, so Meta deduplicates the pair. The rules engine owns this
// file; this placeholder mirrors nothing until it is replaced.
//
// rules: the site's mirror rules as baked into the script (JSON from the
// rules engine). completion: {id, name, ts, props, url, ref, title, consent,
// traits, fbp, fbc}, called only with ads consent. emit(kind, data) reports
// to the snippet's debug hooks (kind "mirror").
export function mirror(rules, completion, emit) {}

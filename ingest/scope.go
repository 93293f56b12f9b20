package ingest

import (
	"sort"

	"github.com/gofiber/fiber/v2"
)

// requireScope lets the request through when the token requireToken
// matched has scope, and answers HubSpot's 403 MISSING_SCOPES otherwise.
func (c *Collector) requireScope(scope string) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		if t, ok := ctx.Locals("token").(*Token); ok && t.Allows(scope) {
			return ctx.Next()
		}
		return writeEnvelope(ctx, fiber.StatusForbidden, envelope{
			Category: "MISSING_SCOPES",
			Message:  "This token has not been granted the " + scope + " scope (api_tokens[].scopes in the config).",
			Errors: []errorDetail{{Message: "One or more of the following scopes are required.",
				Context: map[string][]string{"requiredGranularScopes": {scope}}}},
		})
	}
}

// all returns every definition, page_view included, sorted by name.
func (c *Catalog) all() []*Definition {
	defs := *c.defs.Load()
	out := make([]*Definition, 0, len(defs))
	for _, d := range defs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

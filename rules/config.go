package rules

// Destination is one configured forwarding target.
type Destination struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

// Rule is one configured forwarding rule.
type Rule struct {
	Name    string `yaml:"name"`
	Enabled *bool  `yaml:"enabled"`
}

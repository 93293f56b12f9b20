// Command tally is the collector's command line: it reads the config,
// environment and flags, builds every component and owns their lifetimes.
//
//	tally serve   [-config tally.yaml]   run the collector
//	tally check   [-config tally.yaml]   validate the config, print every problem
//	tally migrate [-config tally.yaml]   apply the ClickHouse schema
//	tally import  -event NAME FILE.csv   import past completions (not in this release)
//	tally snippet -site ID               print the tags to paste into a site
//	tally version                        version, commit, Go version
package main

// Package config reads tally.yaml strictly, expands ${ENV} references, and
// reports every problem with its file, line and column.
package config

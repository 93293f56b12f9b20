// Package chtest gives tests of every tally package a real ClickHouse server:
// one private server per test binary (started on first use, stopped by Main),
// or the server named by TALLY_TEST_CLICKHOUSE_DSN, and a fresh database per
// test so tests do not see each other's rows.
//
// When no server binary is installed, DSN fails the test under CI=true and
// skips it otherwise, naming the install command.
//
// It is imported by tests only and must not import tally's own packages other
// than store/chserver (store's tests import it, so importing store would be a
// cycle). The one server per test binary is package-level state by necessity:
// a test binary has no other owner that outlives its tests; Main is its
// Close.
package chtest

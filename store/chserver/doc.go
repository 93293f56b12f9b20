// Package chserver runs a private ClickHouse server as a child process: the
// embedded default of tally serve when no DSN is configured, and the server
// tests use.
//
// It finds the installed server binary (the official single binary
// "clickhouse" or Debian's "clickhouse-server"), writes a minimal config that
// listens on loopback only, on free ports, with its data under a directory the
// caller chooses, starts the server, waits until it answers a query, and stops
// it with SIGTERM (SIGKILL at the caller's deadline). On Linux the child is
// also killed when its parent dies, so a crashed tally or test binary does not
// leave a server behind.
//
// Supervise is how tally serve runs it: the port is saved in Dir/port and
// reused by every later start, so the DSN and a pasted clickhouse-client
// command keep working; a server that exits unasked is restarted with
// capped exponential backoff (1 s to 30 s, jittered) on that port and data;
// after 5 restarts without a minute of uptime the supervisor gives up and
// says so on Failed, and tally exits non-zero.
//
// It must not know tally's schema or import tally packages other than
// store/backoff (the one retry policy): it only starts, restarts and stops
// a server and says how to reach it. It never installs anything; when no
// binary is found it returns ErrNotInstalled with the install command in the
// message.
package chserver

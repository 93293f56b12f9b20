package chtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-analytics/tally/store/chserver"
)

// zkServer is Debian's ZooKeeper launcher (package zookeeper).
const zkServer = "/usr/share/zookeeper/bin/zkServer.sh"

// Cluster is a ClickHouse cluster on loopback for one test: a private
// ZooKeeper and Replicas servers forming one shard of the cluster named
// Name, with the {shard} and {replica} macros set.
type Cluster struct {
	Name    string
	t       testing.TB
	zk      *exec.Cmd
	dirs    []string
	ports   []int
	extra   []string
	servers []*chserver.Server
	killed  []bool // killed with SIGKILL since its last start
}

// StartCluster starts a ZooKeeper and replicas ClickHouse servers; they
// are stopped when the test ends. Under CI=true a missing ZooKeeper or
// ClickHouse fails the test; elsewhere it skips.
func StartCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	DSN(t) // ClickHouse is installed, or the test fails (CI) or skips
	if _, err := os.Stat(zkServer); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cluster test needs ZooKeeper (%s): apt-get install zookeeper", zkServer)
		}
		t.Skipf("skipping: needs ZooKeeper (%s): apt-get install zookeeper", zkServer)
	}
	c := &Cluster{Name: "tally_test", t: t}
	// The directories are made before stopAll is registered, so the servers
	// stop before their files are removed (cleanups run last first).
	zkDir := t.TempDir()
	for range replicas {
		c.dirs = append(c.dirs, t.TempDir())
	}
	t.Cleanup(c.stopAll)

	zkPort := freePort(t)
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
		filepath.Join(zkDir, "data"), zkPort)
	if err := os.WriteFile(filepath.Join(zkDir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c.zk = exec.Command(zkServer, "start-foreground", filepath.Join(zkDir, "zoo.cfg"))
	c.zk.Env = append(os.Environ(), "ZOO_LOG_DIR="+zkDir)
	out, _ := os.Create(filepath.Join(zkDir, "zk.log"))
	c.zk.Stdout, c.zk.Stderr = out, out
	c.zk.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.zk.Start(); err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	if err := waitZooKeeper(zkPort, 60*time.Second); err != nil {
		t.Fatalf("zookeeper did not start: %v (log %s)", err, filepath.Join(zkDir, "zk.log"))
	}

	for range replicas {
		c.ports = append(c.ports, freePort(t))
	}
	var shard string
	for _, p := range c.ports {
		shard += fmt.Sprintf("<replica><host>127.0.0.1</host><port>%d</port></replica>", p)
	}
	for i := range replicas {
		c.extra = append(c.extra, fmt.Sprintf(`<zookeeper><node><host>127.0.0.1</host><port>%d</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>%d</interserver_http_port>
  <macros><shard>01</shard><replica>r%d</replica></macros>
  <remote_servers><%s><shard><internal_replication>true</internal_replication>%s</shard></%s></remote_servers>`,
			zkPort, freePort(t), i+1, c.Name, shard, c.Name))
		c.servers, c.killed = append(c.servers, nil), append(c.killed, false)
		c.Start(i)
	}
	return c
}

// DSN is replica i's native-protocol DSN.
func (c *Cluster) DSN(i int) string { return fmt.Sprintf("clickhouse://127.0.0.1:%d", c.ports[i]) }

// Start starts replica i (again), on its port and data directory.
//
// A replica restarted after a SIGKILL has been seen to exit (status 70)
// while it loaded a replicated table, once, in a full test run on a busy
// machine; it is started again, up to three times, as a service manager
// would, and each failure is logged with the server's last exception.
//
// A replica killed since its last start (Kill) is started as an operator
// recovers a crashed one, with ClickHouse's force_restore_data flag: a
// replica killed during an INSERT may hold a part it wrote and never
// registered in ZooKeeper, and while a table is small that part can be
// more than half its rows, past which ClickHouse refuses to attach the
// table ("doesn't look like the set of parts in ZooKeeper"). With the flag
// it sets such parts aside (detached) and fetches what it lacks from the
// other replica.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if c.killed[i] {
		flags := filepath.Join(c.dirs[i], "data", "flags")
		if err := os.MkdirAll(flags, 0o750); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(flags, "force_restore_data"), nil, 0o640); err != nil {
			c.t.Fatal(err)
		}
		c.killed[i] = false
	}
	for attempt := 1; ; attempt++ {
		s, err := chserver.Start(ctx, chserver.Config{Dir: c.dirs[i], Port: c.ports[i], ExtraXML: c.extra[i]})
		if err == nil {
			c.servers[i] = s
			return
		}
		if attempt == 3 || ctx.Err() != nil {
			c.t.Fatalf("start clickhouse replica %d (attempt %d): %v", i, attempt, err)
		}
		c.t.Logf("start clickhouse replica %d (attempt %d): %v; starting it again", i, attempt, firstLine(err.Error()))
		time.Sleep(2 * time.Second)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Kill stops replica i at once (SIGKILL), as a crash would.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if s := c.servers[i]; s != nil {
		s.Kill()
		c.servers[i] = nil
		c.killed[i] = true
	}
}

func (c *Cluster) stopAll() {
	if c.t.Failed() {
		// What the replicas logged (warnings and errors) is the only trace
		// of a distributed DDL or replication that hung; their directories
		// go with the test.
		for i, s := range c.servers {
			if s != nil {
				c.t.Logf("clickhouse replica %d, end of its log:\n%s", i, s.LogTail(16<<10))
			}
		}
	}
	for i, s := range c.servers {
		if s != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			s.Stop(ctx)
			cancel()
			c.servers[i] = nil
		}
	}
	if c.zk != nil && c.zk.Process != nil {
		syscall.Kill(-c.zk.Process.Pid, syscall.SIGKILL)
		c.zk.Wait()
	}
}

// waitZooKeeper waits until ZooKeeper gives a new client a session. It
// answers "imok" to ruok, and accepts connections, a while before it does:
// a ClickHouse that connects in that while gives up on ZooKeeper, and
// 18.16's distributed DDL worker then crashes the server. Each attempt is
// one connect request with a deadline of its own (a ZooKeeper client
// library waits tens of seconds on one unanswered request).
func waitZooKeeper(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := zooKeeperSession(fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no session on port %d within %v: %w", port, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// zooKeeperSession opens a session at addr and closes it, in ZooKeeper's
// wire protocol: a length-prefixed ConnectRequest (protocol version,
// last zxid seen, session timeout in ms, session id, password), answered
// by a ConnectResponse whose session id is not 0, then a CloseSession
// request (xid, opcode -11).
func zooKeeperSession(addr string, wait time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	req := binary.BigEndian.AppendUint32(nil, 44)
	req = binary.BigEndian.AppendUint32(req, 0)      // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)      // last zxid seen
	req = binary.BigEndian.AppendUint32(req, 10_000) // session timeout
	req = binary.BigEndian.AppendUint64(req, 0)      // session id: a new one
	req = binary.BigEndian.AppendUint32(req, 16)     // password: 16 bytes
	req = append(req, make([]byte, 16)...)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	resp := make([]byte, 4+4+4+8)
	if _, err := io.ReadFull(conn, resp); err != nil {
		return fmt.Errorf("connect response: %w", err)
	}
	if binary.BigEndian.Uint64(resp[12:]) == 0 {
		return errors.New("connect response without a session")
	}
	closeReq := binary.BigEndian.AppendUint32(nil, 8)
	closeReq = binary.BigEndian.AppendUint32(closeReq, 1)
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xFFFFFFF5)) // -11
	_, _ = conn.Write(closeReq)
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

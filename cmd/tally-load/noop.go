package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// noopEnv, set in the environment of this program, makes it serve a no-op
// fiber handler instead of sending load (see main).
const noopEnv = "TALLY_LOAD_NOOP_SERVER"

// noopApp answers every POST 204 without reading anything else: the
// ceiling of a fiber server on this machine.
func noopApp() *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/*", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) })
	return app
}

// serveNoopIfAsked serves the no-op server, and exits, when startNoop ran
// this program as one (noopEnv set); otherwise it returns.
func serveNoopIfAsked() {
	if os.Getenv(noopEnv) == "" {
		return
	}
	if err := serveNoop(); err != nil {
		fmt.Fprintln(os.Stderr, "tally-load no-op server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveNoop serves noopApp on a loopback port and prints the address as
// its first line of output, for startNoop.
func serveNoop() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return noopApp().Listener(ln)
}

// noopServer is a no-op fiber server running as a child process.
type noopServer struct {
	addr string
	cmd  *exec.Cmd
}

// startNoop runs exe (this program) as a no-op server in its own process,
// so that it is measured as tally is: a server process apart from the
// load's client, paying the same cross-process wakeups.
func startNoop(exe string) (*noopServer, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), noopEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the no-op server: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the no-op server exited before serving")
		}
		return &noopServer{addr: addr, cmd: cmd}, nil
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the no-op server did not print its address within 10s")
	}
}

func (s *noopServer) pid() int { return s.cmd.Process.Pid }

func (s *noopServer) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

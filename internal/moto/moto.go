// Package moto starts the moto server, the AWS emulator that local mode and
// the tests talk to, bound to 127.0.0.1 on a free port.
package moto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Hint tells a user how to get the emulator.
const Hint = `moto_server was not found on PATH: install the AWS emulator with  pip install "moto[server]"  (Python 3.9+), then try again`

// Server is a running moto server.
type Server struct {
	// URL is the endpoint, e.g. http://127.0.0.1:40123.
	URL  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches moto_server on 127.0.0.1 and a free port and waits until it
// answers. log receives the server's own output (nil discards it).
func Start(ctx context.Context, log io.Writer) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, errors.New(Hint)
	}
	if log == nil {
		log = io.Discard
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("finding a free port for moto_server: %w", err)
		}
		cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = childProcAttr()
		cmd.Env = append(os.Environ(), "MOTO_ALLOW_NONEXISTENT_REGION=true")
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting moto_server: %w", err)
		}
		s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.done) }()
		if lastErr = s.wait(ctx, 30*time.Second); lastErr == nil {
			if lastErr = s.manualECS(); lastErr == nil {
				return s, nil
			}
		}
		s.Close()
	}
	return nil, fmt.Errorf("moto_server did not start: %w", lastErr)
}

func (s *Server) wait(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("moto_server exited during start-up (is the port taken?)")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s within %s", s.URL, limit)
}

// manualECS stops moto from advancing a task towards STOPPED on its own each
// time it is described: in local mode only StopTask and the agent stop tasks.
func (s *Server) manualECS() error {
	body := strings.NewReader(`{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000000}}`)
	resp, err := http.Post(s.URL+"/moto-api/state-manager/set-transition", "application/json", body)
	if err != nil {
		return fmt.Errorf("configuring moto's ECS task transitions: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("configuring moto's ECS task transitions: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Reset clears all emulated state (and restores manual ECS transitions).
func (s *Server) Reset() error {
	resp, err := http.Post(s.URL+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return s.manualECS()
}

// PID is the server process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Close stops the server.
func (s *Server) Close() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
}

// Env returns the environment variables that point AWS SDK clients at this
// server with dummy credentials.
func (s *Server) Env(region string) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.URL,
		"AWS_REGION=" + region,
		"AWS_DEFAULT_REGION=" + region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

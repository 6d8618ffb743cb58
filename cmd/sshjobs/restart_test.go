package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// buildBinary builds cmd/sshjobs once per test binary run.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(binDir, "sshjobs")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var binDir string

func TestMain(m *testing.M) {
	if sock := os.Getenv(envTestDial); sock != "" {
		testDial(sock) // a client of another uid (TestDaemonRefusesOtherUsers)
	}
	dir, err := os.MkdirTemp("", "sshjobs-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	// The CLI run in this process would start this test binary as its
	// daemon: tests ask for the daemon explicitly (daemonEnv).
	os.Setenv("SSHJOBS_DAEMON", "off")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stdioServer is the built binary serving MCP over its stdin and stdout.
type stdioServer struct {
	cmd *exec.Cmd
	*mcpClient
}

func startBinary(t *testing.T, bin string, env []string) *stdioServer {
	t.Helper()
	return startBinaryIn(t, bin, env, "")
}

// startBinaryIn is startBinary with dir as its working directory ("": the
// test's).
func startBinaryIn(t *testing.T, bin string, env []string, dir string) *stdioServer {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &stdioServer{cmd: cmd, mcpClient: &mcpClient{t: t, cs: cs}}
	t.Cleanup(func() { cs.Close() })
	return s
}

// binaryEnv configures a built sshjobs for srv, with its history in a new
// folder; the jobs of a killed one are adopted after a second.
// It serves in its own process (SSHJOBS_DAEMON=off): these tests are about
// what a restart of that process does.
func binaryEnv(t testing.TB, srv *sshtest.Server) []string {
	return []string{"SSHJOBS_DB=" + filepath.Join(t.TempDir(), "sshjobs.db"), "SSHJOBS_SSH_CONFIG=" + srv.SSHConfig, "SSHJOBS_LEASE=1s", "SSHJOBS_DAEMON=off"}
}

// kill kills the server with SIGKILL: no chance to clean up.
func (s *stdioServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cs.Close() // the transport reaps the process
}

// TestRestartAnswersJobIDs: the server is killed with SIGKILL while one job
// runs, one is queued behind it and one has finished. A new process answers
// all three ids: the finished one with its output, the queued one runs, the
// running one is lost with its output kept.
func TestRestartAnswersJobIDs(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := binaryEnv(t, srv)

	first := startBinary(t, bin, env)
	finished := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo finished"})
	running := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo working; sleep 60", "timeout_s": 1})
	queued := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo queued", "timeout_s": 0})
	if finished.State != jobs.StateSucceeded || running.State != jobs.StateRunning || queued.State != jobs.StateQueued {
		t.Fatalf("before the kill: %s %s %s", finished.State, running.State, queued.State)
	}
	first.kill()

	second := startBinary(t, bin, env)
	if v := second.job("ssh_job", map[string]any{"job_id": finished.JobID}); v.State != jobs.StateSucceeded || v.Output != "finished\n" || !exitIs(v, 0) {
		t.Fatalf("finished job after restart: %+v", v)
	}
	if v := second.job("ssh_job", map[string]any{"job_id": queued.JobID, "wait_s": 30}); v.State != jobs.StateSucceeded || v.Output != "queued\n" {
		t.Fatalf("queued job after restart: %+v", v)
	}
	v := second.job("ssh_job", map[string]any{"job_id": running.JobID, "wait_s": 30})
	if v.State != jobs.StateLost || v.Output != "working\n" || !strings.Contains(v.Error, "stopped") {
		t.Fatalf("running job after restart: %+v", v)
	}
	if l := second.call("ssh_jobs", map[string]any{}); !strings.Contains(text(l), finished.JobID) || !strings.Contains(text(l), running.JobID) {
		t.Fatalf("ssh_jobs after restart: %s", text(l))
	}
}

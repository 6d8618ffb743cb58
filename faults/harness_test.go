package faults

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// bin is the sshjobs binary built for this test run.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sshjobs-faults")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "sshjobs")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sshjobs/sshjobs/cmd/sshjobs").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// long reports whether the long variants run (SSHJOBS_FAULTS_LONG=1).
func long() bool { return os.Getenv("SSHJOBS_FAULTS_LONG") == "1" }

// requireRoot skips a test that needs root (namespaces, mounts, other
// users' processes), or fails it where CI says the machine allows it.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SSHJOBS_REQUIRE_NETNS") == "1" {
		t.Fatal("faults: this test needs root and SSHJOBS_REQUIRE_NETNS=1")
	}
	t.Skip("faults: SKIPPED, NOT TESTED: needs root")
}

// view is the part of a job's answer (jobView in cmd/sshjobs) the tests read.
type view struct {
	JobID       string `json:"job_id"`
	State       string `json:"state"`
	ExitCode    *int   `json:"exit_code"`
	Error       string `json:"error"`
	Output      string `json:"output"`
	OutputBytes int64  `json:"output_bytes"`
	OutputLost  int64  `json:"output_lost"`
	Offset      int64  `json:"offset"`
	NextOffset  int64  `json:"next_offset"`
	EndedAt     string `json:"ended_at"`
}

// ended is when the job ended, by its row.
func (v *view) ended(t *testing.T) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, v.EndedAt)
	if err != nil {
		t.Fatalf("job %s ended_at %q: %v", v.JobID, v.EndedAt, err)
	}
	return at
}

func (v *view) final() bool {
	switch v.State {
	case "succeeded", "failed", "cancelled", "lost", "error":
		return true
	}
	return false
}

// client is an MCP client of one sshjobs process started from the built
// binary, over its stdin and stdout.
type client struct {
	t   *testing.T
	cmd *exec.Cmd
	cs  *mcp.ClientSession
}

// start runs bin serve with env, behind prefix (e.g. ip netns exec NS).
func start(t *testing.T, env []string, prefix []string, args ...string) *client {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), bin, "serve"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &logWriter{t: t}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "faults", Version: "1"}, nil).
		Connect(context.Background(), &mcp.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("starting sshjobs: %v", err)
	}
	c := &client{t: t, cmd: cmd, cs: cs}
	t.Cleanup(func() { cs.Close() })
	return c
}

// logWriter sends a child's stderr to the test log, which shows it on failure.
type logWriter struct{ t *testing.T }

func (w *logWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // a write after the test ended
	w.t.Logf("sshjobs: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// kill SIGKILLs the process: no chance to clean up.
func (c *client) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cs.Close() // the transport reaps it
}

// hangBound is how long past its own wait a call may take before the test
// calls it a hang and gives up on it.
const hangBound = 60 * time.Second

// call calls a tool and returns its result and how long it took. A protocol
// error fails the test.
func (c *client) call(name string, args map[string]any) (*mcp.CallToolResult, time.Duration) {
	c.t.Helper()
	limit := hangBound + waitOf(args)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		done <- answer{res, err}
	}()
	var res *mcp.CallToolResult
	var err error
	select {
	case a := <-done:
		res, err = a.res, a.err
	case <-time.After(limit + 5*time.Second):
		// The client may wait for an answer past its context.
		c.t.Fatalf("%s %v: no answer after %v: a hang", name, brief(args), time.Since(t0).Round(time.Millisecond))
	}
	d := time.Since(t0)
	if err != nil {
		c.t.Fatalf("%s %v: %v (after %v)", name, brief(args), err, d.Round(time.Millisecond))
	}
	return res, d
}

// bounded calls a tool and fails the test if the call took longer than its
// wait plus one second: no call may block on a dead link or a dying server.
func (c *client) bounded(name string, args map[string]any) *mcp.CallToolResult {
	c.t.Helper()
	res, d := c.call(name, args)
	if limit := waitOf(args) + time.Second; d > limit {
		c.t.Errorf("%s %v took %v, more than its wait plus 1s (%v)", name, brief(args), d.Round(time.Millisecond), limit)
	}
	return res
}

// job decodes a job answer; a tool error fails the test.
func (c *client) job(name string, args map[string]any) *view {
	c.t.Helper()
	return c.decode(name, args, c.bounded(name, args))
}

func (c *client) decode(name string, args map[string]any, res *mcp.CallToolResult) *view {
	c.t.Helper()
	if res.IsError && res.StructuredContent == nil {
		c.t.Fatalf("%s %v: tool error: %s", name, brief(args), text(res))
	}
	var v view
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &v); err != nil || v.JobID == "" {
		c.t.Fatalf("%s %v: not a job: %s", name, brief(args), text(res))
	}
	return &v
}

// waitFinal follows a job with ssh_job until it is final or d passes.
func (c *client) waitFinal(id string, d time.Duration) *view {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := c.job("ssh_job", map[string]any{"job_id": id, "wait_s": 5, "max_output": 0})
		if v.final() || time.Now().After(deadline) {
			return v
		}
	}
}

// output reads a job's whole stored output, page by page, passing over
// holes.
func (c *client) output(id string) []byte {
	c.t.Helper()
	var out []byte
	for off := int64(0); ; {
		// Not bounded: reading a MiB on a loaded machine may take a second.
		args := map[string]any{"job_id": id, "offset": off, "max_output": 1 << 20}
		res, _ := c.call("ssh_job", args)
		v := c.decode("ssh_job", args, res)
		// The bytes of [offset, next_offset): a read that began in a hole
		// (output that could not be stored) starts with a note saying so.
		out = append(out, v.Output[len(v.Output)-int(v.NextOffset-v.Offset):]...)
		if v.NextOffset <= off || v.NextOffset >= v.OutputBytes {
			return out
		}
		off = v.NextOffset
	}
}

// waitOf is the longest a tool call may wait by its own arguments.
func waitOf(args map[string]any) time.Duration {
	var d time.Duration
	for _, k := range []string{"wait_s", "timeout_s"} {
		if s, ok := args[k].(int); ok {
			d = max(d, time.Duration(s)*time.Second)
		}
	}
	if _, ok := args["timeout_s"]; !ok && args["command"] != nil {
		d = max(d, 30*time.Second) // ssh_run's default
	}
	if g, ok := args["grace_s"].(int); ok {
		// ssh_cancel waits grace_s + 2 s + one heartbeat (2 s).
		d = max(d, time.Duration(g)*time.Second+4*time.Second)
	}
	return d
}

// brief shortens long argument values for messages.
func brief(args map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range args {
		if s, ok := v.(string); ok && len(s) > 80 {
			v = s[:80] + "..."
		}
		m[k] = v
	}
	return m
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// integrity runs PRAGMA integrity_check on the database at path.
func integrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s: %q %v", path, res, err)
	}
}

// serverEnv configures a built sshjobs for srv with its history at db; the
// jobs of a killed one are adopted after a second.
func serverEnv(srv *sshtest.Server, db string) []string {
	return []string{"SSHJOBS_DB=" + db, "SSHJOBS_SSH_CONFIG=" + srv.SSHConfig, "SSHJOBS_LEASE=1s", "SSHJOBS_DAEMON=off"}
}

// lines is the output of seq -f "PREFIX%06g" from to.
func lines(prefix string, from, to int) []byte {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%s%06d\n", prefix, i)
	}
	return []byte(b.String())
}

// seqCmd prints lines(prefix, from, to).
func seqCmd(prefix string, from, to int) string {
	return fmt.Sprintf("seq -f '%s%%06g' %d %d", prefix, from, to)
}

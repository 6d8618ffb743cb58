package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testConfig is the configuration of an sshjobs that reaches srv (if any)
// through its ssh_config file, with its history in dir.
func testConfig(tb testing.TB, srv *sshtest.Server, dir string) config {
	tb.Helper()
	var cfg config
	args := []string{"-db", filepath.Join(dir, "sshjobs.db")}
	if srv != nil {
		args = append(args, "-ssh-config", srv.SSHConfig)
	}
	if err := parseFlags(newFlags("test", "", io.Discard, &cfg), &cfg, args); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// mcpClient is a client session connected in memory to a fresh sshjobs.
type mcpClient struct {
	t  *testing.T
	cs *mcp.ClientSession
	a  *app
}

func newMCPClient(t *testing.T, cfg config) *mcpClient {
	t.Helper()
	return connectMCP(t, cfg, mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil))
}

// connectMCP opens the app of cfg and serves its tools to client over
// in-memory transports, until the test ends.
func connectMCP(t *testing.T, cfg config, client *mcp.Client) *mcpClient {
	t.Helper()
	ctx := context.Background()
	a, err := openApp(ctx, cfg, modeServe)
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := newMCPServer(a).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	return &mcpClient{t: t, cs: cs, a: a}
}

// call calls a tool and returns its result, failing on a protocol error.
func (c *mcpClient) call(name string, args map[string]any) *mcp.CallToolResult {
	c.t.Helper()
	res, err := c.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		c.t.Fatalf("%s %v: %v", name, args, err)
	}
	return res
}

// job calls a tool that returns a job and decodes it; a tool error fails.
func (c *mcpClient) job(name string, args map[string]any) *jobView {
	c.t.Helper()
	res := c.call(name, args)
	if res.IsError && res.StructuredContent == nil {
		c.t.Fatalf("%s %v: tool error: %s", name, args, text(res))
	}
	var v jobView
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &v); err != nil {
		c.t.Fatal(err)
	}
	if !strings.HasPrefix(text(res), "job "+v.JobID+" "+string(v.State)) {
		c.t.Fatalf("%s: text does not start with the state line: %q", name, text(res))
	}
	return &v
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

func exitIs(v *jobView, code int) bool { return v.ExitCode != nil && *v.ExitCode == code }

func TestMCPRun(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		c := newMCPClient(t, testConfig(t, srv, t.TempDir()))

		v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo 'Hello World'"})
		if v.State != jobs.StateSucceeded || !exitIs(v, 0) || v.Output != "Hello World\n" || v.Truncated {
			t.Fatalf("echo: %+v", v)
		}
		// The test's ssh_config names its own key and known_hosts: the
		// destination's key carries a hash of them after user@host:port.
		if base, hash, ok := strings.Cut(v.Host, "#"); base != srv.User+"@127.0.0.1:"+strconv.Itoa(srv.Port) || !ok || len(hash) != 8 {
			t.Errorf("host %q", v.Host)
		}
		for cmd, code := range map[string]int{"false": 1, "(exit 3)": 3, "ls /nonexistent": 2} {
			if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": cmd}); v.State != jobs.StateFailed || !exitIs(v, code) {
				t.Errorf("%s: %s exit %v, want failed %d", cmd, v.State, v.ExitCode, code)
			}
		}
		c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "cd /tmp"})
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "pwd"}); v.Output != "/tmp\n" || v.Cwd != "/tmp" {
			t.Errorf("pwd after cd: %q cwd %q", v.Output, v.Cwd)
		}
	})
}

// A command that outlives timeout_s comes back as a job id and is followed
// with ssh_job to its exit code; a second command on the busy session queues.
func TestMCPTimeoutHandsBackJob(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
		slow := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo start; sleep 2; echo end; (exit 7)", "timeout_s": 0.5})
		if slow.State != jobs.StateRunning || slow.JobID == "" {
			t.Fatalf("slow command after timeout_s: %+v", slow)
		}
		queued := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo second", "timeout_s": 0})
		if queued.State != jobs.StateQueued || queued.QueuePosition != 1 {
			t.Fatalf("second command on a busy session: %s position %d", queued.State, queued.QueuePosition)
		}
		// Another session is not blocked by the busy one.
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "session": "other", "command": "echo parallel", "timeout_s": 10}); v.Output != "parallel\n" {
			t.Fatalf("other session: %+v", v)
		}
		done := c.job("ssh_job", map[string]any{"job_id": slow.JobID, "wait_s": 20})
		if done.State != jobs.StateFailed || !exitIs(done, 7) || done.Output != "start\nend\n" {
			t.Fatalf("followed job: %+v", done)
		}
		second := c.job("ssh_job", map[string]any{"job_id": queued.JobID, "wait_s": 20})
		if second.State != jobs.StateSucceeded || second.Output != "second\n" {
			t.Fatalf("queued job: %+v", second)
		}
		if second.StartedAt < done.EndedAt {
			t.Fatalf("queued job started at %s, before the first ended at %s", second.StartedAt, done.EndedAt)
		}
	})
}

func TestMCPLargeOutputPagingAndGrep(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	var want strings.Builder
	for i := 1; i <= 100000; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "seq 1 100000", "timeout_s": 60})
	if v.State != jobs.StateSucceeded || v.OutputBytes != int64(want.Len()) || !v.Truncated {
		t.Fatalf("seq: %s, %d bytes, truncated %v", v.State, v.OutputBytes, v.Truncated)
	}
	if !strings.HasPrefix(v.Output, "1\n2\n3\n") || !strings.HasSuffix(v.Output, "99999\n100000\n") ||
		!strings.Contains(v.Output, "bytes left out: read them with ssh_job offset=") || len(v.Output) > defaultMaxOutput+200 {
		t.Fatalf("inline output is not head + marked gap + tail (%d bytes): %.200q", len(v.Output), v.Output)
	}
	var got strings.Builder
	for off := int64(0); off < v.OutputBytes; {
		p := c.job("ssh_job", map[string]any{"job_id": v.JobID, "offset": off, "max_output": 65536})
		if p.Offset != off || p.NextOffset <= off {
			t.Fatalf("page at %d: offset %d next %d", off, p.Offset, p.NextOffset)
		}
		got.WriteString(p.Output)
		off = p.NextOffset
	}
	if got.String() != want.String() {
		t.Fatalf("paged output differs from seq 1 100000 (%d vs %d bytes)", got.Len(), want.Len())
	}
	g := c.job("ssh_job", map[string]any{"job_id": v.JobID, "grep": "^9999[0-9]$"})
	if len(g.Matches) != 10 || g.Matches[0].Line != 99990 || g.Matches[0].Text != "99990" {
		t.Fatalf("grep: %+v", g.Matches)
	}
	if tail := c.job("ssh_job", map[string]any{"job_id": v.JobID, "max_output": 100}); !strings.HasSuffix(tail.Output, "\n100000\n") || tail.NextOffset != v.OutputBytes {
		t.Fatalf("default ssh_job read is not the tail: %q", tail.Output)
	}
}

func TestMCPBadInput(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string // in the error text
	}{
		{"ssh_run", map[string]any{"command": "true"}, "host"},
		{"ssh_run", map[string]any{"host": srv.Alias}, "command"},
		{"ssh_run", map[string]any{"host": srv.Alias, "command": 42}, "command"},
		{"ssh_run", map[string]any{"host": srv.Alias, "command": "true", "timeout_s": -1}, "timeout_s"},
		{"ssh_run", map[string]any{"host": srv.Alias, "command": strings.Repeat("x", 1<<20)}, "limit"},
		{"ssh_run", map[string]any{"host": srv.Alias, "command": "echo \x00"}, "NUL"},
		{"ssh_run", map[string]any{"host": "-oProxyCommand=touch /tmp/pwned", "command": "true"}, "host"},
		{"ssh_job", map[string]any{"job_id": "nope"}, "not a job id"},
		{"ssh_job", map[string]any{"job_id": "0190c5e2-0000-7000-8000-000000000000"}, "ssh_jobs"},
		{"ssh_job", map[string]any{"job_id": "0190c5e2-0000-7000-8000-000000000000", "offset": -5}, "offset"},
		{"ssh_jobs", map[string]any{"state": "bogus"}, "state"},
		{"ssh_cancel", map[string]any{"job_id": "0190c5e2-0000-7000-8000-000000000000", "signal": "HUP"}, "signal"},
	} {
		res := c.call(tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s %.80v: isError=%v %q, want an error naming %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
		}
	}
	// A host that does not answer is a job that ends in error, shown as a tool error.
	// The kind of failure comes as a word, in the text and the fields.
	res := c.call("ssh_run", map[string]any{"host": "nobody@127.0.0.1:1", "command": "true"})
	if !res.IsError || !strings.Contains(text(res), "error (connect): ") {
		t.Errorf("unreachable host: isError=%v %q", res.IsError, text(res))
	}
	if v := c.job("ssh_run", map[string]any{"host": "nobody@127.0.0.1:1", "command": "true"}); v.ErrorKind != "connect" {
		t.Errorf("unreachable host: error_kind %q, want connect", v.ErrorKind)
	}
	// A host that refuses the login: the test server accepts only its own key.
	if v := c.job("ssh_run", map[string]any{"host": "nobody@" + srv.Addr(), "command": "true"}); v.State != jobs.StateError || v.ErrorKind != "auth" {
		t.Errorf("refused login: %s error_kind %q (%s), want error auth", v.State, v.ErrorKind, v.Error)
	}
	// The server keeps serving.
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo ok"}); v.Output != "ok\n" {
		t.Fatalf("after bad input: %+v", v)
	}
}

// TestToolsGolden keeps tools/list in a golden file, so that a change of a
// tool's schema or description is a visible diff; and keeps it small.
func TestToolsGolden(t *testing.T) {
	c := newMCPClient(t, testConfig(t, nil, t.TempDir()))
	res, err := c.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(res.Tools, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(res.Tools)
	t.Logf("tools/list: %d tools, %d bytes (compact JSON)", len(res.Tools), len(compact))
	if len(compact) > 12<<10 {
		t.Errorf("tools/list is %d bytes; keep it under 12 KiB", len(compact))
	}
	for _, tool := range res.Tools {
		props, _ := tool.InputSchema.(map[string]any)["properties"].(map[string]any)
		for name, p := range props {
			if d, _ := p.(map[string]any)["description"].(string); d == "" {
				t.Errorf("%s.%s has no description", tool.Name, name)
			}
			// Clients that convert arguments by the schema's type (the MCP
			// Inspector's CLI) need one plain type, not ["null", "number"].
			if _, plain := p.(map[string]any)["type"].(string); !plain {
				t.Errorf("%s.%s has type %v; want one plain type", tool.Name, name, p.(map[string]any)["type"])
			}
		}
	}
	golden := filepath.Join("testdata", "tools.golden.json")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/sshjobs -run TestToolsGolden -update)", err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("tools/list changed; if intended, run go test ./cmd/sshjobs -run TestToolsGolden -update and review the diff")
	}
}

// waitFor polls cond until it holds, for tests that watch another process.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// While ssh_run waits, a client that sent a progress token gets progress
// notifications with the bytes so far and the last line.
func TestMCPProgress(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	ctx := context.Background()
	a, err := openApp(ctx, testConfig(t, srv, t.TempDir()), modeServe)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var mu sync.Mutex
	var notes []*mcp.ProgressNotificationParams
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, req.Params)
			mu.Unlock()
		},
	})
	ct, st := mcp.NewInMemoryTransports()
	if _, err := newMCPServer(a).Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "ssh_run", Arguments: map[string]any{
		"host": srv.Alias, "command": "for i in 1 2 3 4 5 6; do echo step $i; sleep 0.5; done"}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("%v %s", err, text(res))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) < 2 {
		t.Fatalf("%d progress notifications in 3s, want one a second", len(notes))
	}
	last := notes[len(notes)-1]
	if last.ProgressToken != "tok-1" || last.Progress <= 0 || !strings.Contains(last.Message, "step ") {
		t.Fatalf("last notification: %+v", last)
	}
}

// A client that cancels its call stops the wait, never the job.
func TestMCPCancelledCallLeavesJobRunning(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "ssh_run", Arguments: map[string]any{
		"host": srv.Alias, "command": "sleep 1.5; echo finished"}})
	if err == nil {
		t.Fatal("the cancelled call returned normally")
	}
	list := c.call("ssh_jobs", map[string]any{})
	var out jobsOut
	b, _ := json.Marshal(list.StructuredContent)
	json.Unmarshal(b, &out)
	if len(out.Jobs) != 1 {
		t.Fatalf("jobs: %s", text(list))
	}
	v := c.job("ssh_job", map[string]any{"job_id": out.Jobs[0].JobID, "wait_s": 10})
	if v.State != jobs.StateSucceeded || v.Output != "finished\n" {
		t.Fatalf("the job after its call was cancelled: %+v", v)
	}
}

func TestDecodeEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`magic\n`:       "magic\n",
		`y`:             "y",
		`\x03`:          "\x03",
		`a\tb\\n\r`:     "a\tb\\n\r",
		`\u00e9\e[A`:    "é\x1b[A",
		`trailing\`:     `trailing\`,
		`unknown \q ok`: `unknown \q ok`,
	} {
		got, err := decodeEscapes(in)
		if err != nil || string(got) != want {
			t.Errorf("decodeEscapes(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", `\x4`, `\xzz`, `\u12`, `\x00`} {
		if _, err := decodeEscapes(bad); err == nil {
			t.Errorf("decodeEscapes(%q): no error", bad)
		}
	}
}

// ssh_input answers a command that reads its terminal.
func TestMCPInput(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": `read v; echo "You said: $v"`, "timeout_s": 0.5})
	if v.State.Final() {
		t.Fatalf("read ended without input: %+v", v)
	}
	got := c.job("ssh_input", map[string]any{"job_id": v.JobID, "text": `magic\n`})
	if got.State != jobs.StateSucceeded || !strings.Contains(got.Output, "You said: magic") {
		t.Fatalf("after input: %+v", got)
	}
	if res := c.call("ssh_input", map[string]any{"job_id": v.JobID, "text": `late\n`}); !res.IsError {
		t.Fatalf("input to a finished job: %s", text(res))
	}
}

// ssh_cancel stops a running job (also one that ignores Ctrl-C) and keeps
// the session usable; a killed job has no exit code, its signal says why.
func TestMCPCancel(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
		for _, cmd := range []string{"sleep 600", "trap '' INT; sleep 600"} {
			v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": cmd, "timeout_s": 0.5})
			got := c.job("ssh_cancel", map[string]any{"job_id": v.JobID, "grace_s": 1})
			if got.State != jobs.StateCancelled || got.ExitCode != nil || got.Signal == "" {
				t.Fatalf("%q after ssh_cancel: %s exit %v signal %q", cmd, got.State, got.ExitCode, got.Signal)
			}
			if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo still here"}); v.Output != "still here\n" || v.NewShell {
				t.Fatalf("the session after cancelling %q: %+v", cmd, v)
			}
		}
		c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "trap - INT"})
	})
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// Bad input through the MCP layer: every tool's arguments, random and shaped
// by its input schema (wrong types, huge numbers, NaN and Infinity spelled
// as strings and as numbers past float64, giant strings, NUL, invalid
// UTF-8, pathological regular expressions, a FIFO and /dev/zero where a file
// is read), through an in-memory client. Every answer must be a result or a
// tool error, within its own wait plus a bound; a panic kills the test
// binary. The values are confined (confine) so that nothing leaves the
// test's folders: hosts are the test server or names that fail before any
// lookup, commands only print, remote and local paths stay in temp folders.

// fuzzHang is how long past its own wait a call may take.
const fuzzHang = 20 * time.Second

// fuzzEnv is one sshjobs served in memory against one in-process server.
type fuzzEnv struct {
	c     *mcpClient
	srv   *sshtest.Server
	dir   string // remote and local files live here
	fifo  string
	tools []*mcp.Tool
	ids   []string // job ids seen
	// tally counts answers by "tool outcome", outcome result, tool_error
	// or invalid_params.
	tally map[string]int
}

func newFuzzEnv(t *testing.T) *fuzzEnv {
	t.Helper()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	cfg := testConfig(t, srv, t.TempDir())
	dir := t.TempDir()
	cfg.AllowLocal = []string{dir}
	c := newMCPClient(t, cfg)
	e := &fuzzEnv{c: c, srv: srv, dir: dir, fifo: filepath.Join(dir, "fifo"), tally: map[string]int{}}
	if err := syscall.Mkfifo(e.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("line one\nline two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := c.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.tools = res.Tools
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "seq 1 2000"})
	e.ids = append(e.ids, v.JobID)
	return e
}

// call sends one tool call and checks its answer.
func (e *fuzzEnv) call(t *testing.T, name string, args map[string]any) {
	t.Helper()
	limit := fuzzHang
	for _, k := range []string{"wait_s", "timeout_s", "grace_s"} {
		if f, ok := args[k].(float64); ok && f > 0 && f <= 300 {
			limit += time.Duration(f * float64(time.Second))
		}
	}
	if _, ok := args["grace_s"]; ok {
		limit += 4 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	res, err := e.c.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	d := time.Since(t0)
	if err != nil {
		var we *jsonrpc.Error
		if errors.As(err, &we) && we.Code == jsonrpc.CodeInvalidParams {
			e.tally[name+" invalid_params"]++
			return // arguments that are not an object of the schema's shape
		}
		t.Fatalf("%s %s: no result or tool error after %v: %v", name, short(args), d.Round(time.Millisecond), err)
	}
	if res == nil {
		t.Fatalf("%s %s: nil result", name, short(args))
	}
	e.tally[name+map[bool]string{false: " result", true: " tool_error"}[res.IsError]]++
	if !res.IsError {
		if id, ok := res.StructuredContent.(map[string]any)["job_id"].(string); ok && len(e.ids) < 50 {
			e.ids = append(e.ids, id)
		}
	}
}

func short(args map[string]any) string {
	b, _ := json.Marshal(args)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// toolSchema is the part of an input schema the generator reads.
type toolSchema struct {
	Properties map[string]struct {
		Type string `json:"type"`
	} `json:"properties"`
	Required []string `json:"required"`
}

func schemaOf(tool *mcp.Tool) toolSchema {
	b, _ := json.Marshal(tool.InputSchema)
	var s toolSchema
	json.Unmarshal(b, &s)
	return s
}

// args builds random arguments for tool from its input schema.
func (e *fuzzEnv) args(r *rand.Rand, tool *mcp.Tool) map[string]any {
	s := schemaOf(tool)
	args := map[string]any{}
	if r.IntN(2) == 0 {
		// Mostly good: every field sane but one, so that the bad value
		// gets past the others to where it is used.
		var names []string
		for name := range s.Properties {
			if v, ok := e.good(r, name); ok {
				args[name] = v
			}
			names = append(names, name)
		}
		if len(names) > 0 {
			slices.Sort(names)
			name := names[r.IntN(len(names))]
			args[name] = e.value(r, name, s.Properties[name].Type)
		}
		return args
	}
	for name, p := range s.Properties {
		required := strings.Contains(strings.Join(s.Required, ","), name)
		if !required && r.IntN(2) == 0 || required && r.IntN(20) == 0 {
			continue
		}
		args[name] = e.value(r, name, p.Type)
	}
	if r.IntN(10) == 0 {
		args["unknown_field"] = e.value(r, "x", "string")
	}
	return args
}

// good is a sane value for a property, if it has one worth setting.
func (e *fuzzEnv) good(r *rand.Rand, name string) (any, bool) {
	switch name {
	case "host":
		return e.srv.Alias, true
	case "command":
		return pick(r, "echo ok", "seq 1 100", "printf 'a\\nb\\n'"), true
	case "job_id":
		return e.ids[r.IntN(len(e.ids))], true
	case "path", "remote":
		return pick(r, filepath.Join(e.dir, "file"), filepath.Join(e.dir, "new"), e.dir), true
	case "local":
		return pick(r, filepath.Join(e.dir, "file"), filepath.Join(e.dir, "got")), true
	case "content", "text":
		return "hello\n", true
	case "wait_s", "timeout_s", "grace_s":
		return pick(r, 0, 1), true
	case "max_output", "max_bytes", "max_entries", "limit":
		return pick(r, 1, 100, 4096), true
	case "offset":
		return pick(r, 0, 3), true
	case "session":
		return pick(r, "default", "s1"), true
	case "action":
		return "list", true
	case "grep":
		return "o", true
	}
	return nil, false
}

// value is a random value for a property, usually of its type.
func (e *fuzzEnv) value(r *rand.Rand, name, typ string) any {
	if r.IntN(8) == 0 {
		typ = []string{"string", "number", "integer", "boolean", "array", "object", "null"}[r.IntN(7)]
	}
	switch typ {
	case "number", "integer":
		return pick(r, 0, -1, 1, 0.5, 301, 2.5, 1e308, -1e308, 1<<53, -(1 << 62), 1e-300,
			json.Number("1e309"), json.Number("-1e400"), json.Number("123456789012345678901234567890"),
			"NaN", "Infinity", "-Infinity", "1e999")
	case "boolean":
		return pick(r, true, false, "true", 1)
	case "array":
		return []any{e.value(r, name, "string"), 1}
	case "object":
		return map[string]any{"a": e.value(r, name, "string")}
	case "null":
		return nil
	}
	switch name {
	case "job_id":
		if len(e.ids) > 0 && r.IntN(2) == 0 {
			return e.ids[r.IntN(len(e.ids))]
		}
	case "grep":
		return pick(r, `(a+)+$`, `((a|aa)*)*b`, `(.*)*x`, `a{1001}`, `(?i)\p{L}{100}{100}`, `[`, `\`, `(?P<n>`,
			strings.Repeat("(a|b)*", 2000), strings.Repeat("a", 1<<20), "^[0-9]+$", "")
	case "state":
		return pick(r, "active", "running", "queued", "lost", "bogus", "")
	case "signal":
		return pick(r, "INT", "sigterm", "KILL", "HUP", "", "9", "SIG")
	case "since":
		return pick(r, "1h", "-1h", "9999999h", "2026-01-01T00:00:00Z", "NaN", "")
	case "action":
		return pick(r, "list", "delete", "set", "", "x")
	case "kind":
		return pick(r, "password", "sudo", "passphrase", "enable", "x", "")
	case "encoding":
		return pick(r, "base64", "utf8", "", "x")
	case "mode":
		return pick(r, "0600", "0777", "4755", "99999", "-1", "0o7", "", "0x1ff", "777777777777")
	case "keys":
		return pick(r, "<enter>", "<ctrl-c>", "<<", "<nokey>", "<", "a<f12>b", strings.Repeat("<up>", 10000))
	}
	return pick(r, "", " ", "a", "\x00", "a\x00b", "\xff\xfe", "NaN", "Infinity", "-0", "1e309",
		"é日本\u202e", strings.Repeat("x", 300<<10), strings.Repeat("é", 1<<20), "~", "..", "../../..",
		"-oProxyCommand=false", `$(false)`, "`false`", "%s%n", "\\x00\\u0000\\e")
}

func pick(r *rand.Rand, vs ...any) any { return vs[r.IntN(len(vs))] }

// confine rewrites the values that would reach outside the test into ones
// that stay in it, keeping their badness where it is harmless: hosts are the
// test server or names rejected before any lookup, commands print their
// text, paths live in the test's folder (or are the FIFO, /dev/zero where
// only read and bounded, or empty/NUL/giant).
func (e *fuzzEnv) confine(r *rand.Rand, tool *mcp.Tool, args map[string]any) {
	// Only the schema's own names: encoding/json matches names without
	// regard to case (even "hoſt" is host), which would slip past the rest.
	props := schemaOf(tool).Properties
	for k := range args {
		if _, ok := props[k]; !ok && k != "unknown_field" {
			delete(args, k)
		}
	}
	if h, ok := args["host"]; ok && h != e.srv.Alias {
		args["host"] = pick(r, e.srv.Alias, e.srv.Alias, e.srv.Alias, "", " ", "\x00", "-oProxyCommand=false",
			"a b", "@", "[", e.srv.Alias+":0", e.srv.Alias+":99999", "nobody@127.0.0.1:1", strings.Repeat("h", 1<<16),
			e.srv.User+"@"+e.srv.Alias, 42, nil)
	}
	// device: true is no bad input but a user's word that the host is a
	// network device, kept for the process's life: the test's Linux host
	// would then get device sessions, and the shell check at the end
	// would fail on what the test itself said.
	if d, ok := args["device"].(bool); ok && d {
		args["device"] = false
	}
	if c, ok := args["command"].(string); ok && c != "" && !strings.ContainsRune(c, 0) && len(c) < 200<<10 {
		args["command"] = "printf '%s\\n' " + shQuoteTest(c)
	}
	for _, k := range []string{"path", "remote", "local", "private_key_path"} {
		v, ok := args[k].(string)
		if !ok {
			continue
		}
		reads := tool.Name == "ssh_read_file" || tool.Name == "ssh_list_dir" || k == "private_key_path"
		switch {
		case v == "" || strings.ContainsRune(v, 0) || len(v) > 4096:
		case strings.HasPrefix(v, e.dir+"/") && !strings.Contains(v, ".."), v == e.dir:
		case reads && r.IntN(3) == 0:
			args[k] = pick(r, "/dev/zero", e.fifo, "/proc/self/status", "/", "~", e.dir)
		case r.IntN(4) == 0:
			args[k] = e.fifo
		default:
			args[k] = filepath.Join(e.dir, fmt.Sprintf("f%d", r.IntN(5)), strings.Trim(strings.ReplaceAll(v, "/", "_"), "."))
		}
	}
	if tool.Name == "ssh_download" || tool.Name == "ssh_upload" {
		// A folder copy of the whole test folder is fine; nothing else
		// recursive.
		if args["recursive"] == true {
			args["remote"], args["local"] = filepath.Join(e.dir, "f1"), filepath.Join(e.dir, "f2")
		}
	}
	// Waits: a value in range is at most 2 s (the hang bound counts it).
	for _, k := range []string{"wait_s", "timeout_s", "grace_s"} {
		if f, ok := args[k].(float64); ok && f > 2 && f <= 300 {
			args[k] = 1.0
		}
	}
}

func shQuoteTest(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestToolArgsFuzzed sends random, schema-shaped bad arguments to every
// tool for a bounded time (SSHJOBS_FUZZ_TOOLS, default 20s): no panic, no
// hang, every answer a result or a tool error, and the server still runs
// commands afterwards.
func TestToolArgsFuzzed(t *testing.T) {
	d := 20 * time.Second
	if v := os.Getenv("SSHJOBS_FUZZ_TOOLS"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	e := newFuzzEnv(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	calls := 0
	for end := time.Now().Add(d); time.Now().Before(end); calls++ {
		tool := e.tools[r.IntN(len(e.tools))]
		args := e.args(r, tool)
		e.confine(r, tool, args)
		e.call(t, tool.Name, args)
	}
	t.Logf("%d calls in %v: %v", calls, d, e.tally)
	if v := e.c.job("ssh_run", map[string]any{"host": e.srv.Alias, "session": "after", "command": "echo ok"}); v.Output != "ok\n" {
		t.Fatalf("after bad input: %+v", v)
	}
}

// FuzzToolArgs sends the fuzzer's JSON as a tool's arguments (the first
// byte picks the tool), confined like TestToolArgsFuzzed's.
func FuzzToolArgs(f *testing.F) {
	f.Add(byte(0), []byte(`{"job_id":"0190c5e2-0000-7000-8000-000000000000","wait_s":1e309}`))
	f.Add(byte(1), []byte(`{"host":"sshtest-inprocess","command":"echo hi","timeout_s":"NaN"}`))
	f.Add(byte(2), []byte(`{"host":"sshtest-inprocess","path":"x","max_bytes":-1,"offset":9223372036854775807}`))
	f.Add(byte(3), []byte(`{"job_id":"x","grep":"(a+)+$","max_output":1e308}`))
	f.Fuzz(func(t *testing.T, which byte, raw []byte) {
		var args map[string]any
		if json.Unmarshal(raw, &args) != nil {
			return
		}
		e := newFuzzEnv(t)
		tool := e.tools[int(which)%len(e.tools)]
		e.confine(rand.New(rand.NewPCG(uint64(len(raw)), uint64(which))), tool, args)
		e.call(t, tool.Name, args)
	})
}

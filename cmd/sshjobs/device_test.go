package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/devicetest"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// A network device through the tools: ssh_connect with device=true reports
// it (no shell probe typed into its CLI), ssh_run gives clean output with
// a null exit code, a streaming command is handed back at timeout_s and
// stopped by ssh_cancel, sudo and detach are tool errors, ssh_sessions
// shows the device and its prompt.
func TestMCPDevice(t *testing.T) {
	d := &devicetest.IOS{EnableSecret: "mcp-enable-1", Log: &devicetest.Log{}}
	srv := sshtest.StartInProcess(t, sshtest.Options{Serve: d.Serve})
	t.Setenv("OVRD_"+srv.Alias+"_ENABLE_PASS", "mcp-enable-1")
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))

	res := c.call("ssh_connect", map[string]any{"host": srv.Alias, "device": true})
	if res.IsError || !strings.Contains(text(res), "remote: network device (IOS-style, prompt R1>)") {
		t.Fatalf("ssh_connect: %s", text(res))
	}
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show running-config | include hostname"})
	if v.State != jobs.StateSucceeded || v.ExitCode != nil || v.Output != "hostname R1\n" || v.Cwd != "R1#" {
		t.Fatalf("ssh_run: %+v", v)
	}
	if raw := res.StructuredContent; raw == nil {
		t.Fatal("ssh_connect: no structured content")
	}
	// exit_code is null in the JSON, not left out and never 0.
	run := c.call("ssh_run", map[string]any{"host": srv.Alias, "command": "show clock"})
	b, _ := json.Marshal(run.StructuredContent)
	if !strings.Contains(string(b), `"exit_code":null`) || !strings.Contains(string(b), `"state":"succeeded"`) {
		t.Errorf("ssh_run JSON: %s", b)
	}

	bad := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show vresion"})
	if bad.State != jobs.StateFailed || bad.ExitCode != nil || bad.Error != "% Invalid input detected at '^' marker." {
		t.Errorf("invalid command: %+v", bad)
	}

	ping := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "ping 10.0.0.9 repeat 100000", "timeout_s": 1})
	if ping.State != jobs.StateRunning || !strings.HasPrefix(ping.Output, "Type escape sequence to abort.\n") {
		t.Fatalf("streaming command after timeout_s: %+v", ping)
	}
	waitFor(t, "more output", func() bool {
		v := c.job("ssh_job", map[string]any{"job_id": ping.JobID})
		return strings.Count(v.Output, "!") > strings.Count(ping.Output, "!")+5
	})
	got := c.job("ssh_cancel", map[string]any{"job_id": ping.JobID})
	if got.State != jobs.StateCancelled || got.ExitCode != nil || !strings.Contains(got.Output, "Success rate is 100 percent") {
		t.Fatalf("after ssh_cancel: %+v", got)
	}
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show clock"}); v.State != jobs.StateSucceeded || v.NewShell {
		t.Fatalf("the session after the cancel: %+v", v)
	}

	for _, args := range []map[string]any{
		{"host": srv.Alias, "command": "show version", "sudo": true},
		{"host": srv.Alias, "command": "show version", "detach": true},
	} {
		res := c.call("ssh_run", args)
		if !res.IsError || !strings.Contains(text(res), "is a network device") || res.StructuredContent != nil {
			t.Errorf("ssh_run %v: %s", args, text(res))
		}
	}

	res = c.call("ssh_sessions", map[string]any{})
	var out sessionsOut
	b, _ = json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &out)
	if len(out.Connections) != 1 || out.Connections[0].Device != "network device (IOS-style, prompt R1#)" ||
		len(out.Connections[0].Sessions) != 1 || out.Connections[0].Sessions[0].Cwd != "R1#" {
		t.Errorf("ssh_sessions: %+v\n%s", out, text(res))
	}
	for _, l := range d.Log.Lines() {
		if strings.Contains(l, "SSHJOBS_PROBE") || strings.Contains(l, "PS1") {
			t.Errorf("a shell probe reached the device: %q", l)
		}
	}
}

// SSHJOBS_DEVICES names devices by alias pattern: their sessions start as
// device sessions, without the probe.
func TestDevicesSetting(t *testing.T) {
	d := &devicetest.RouterOS{Log: &devicetest.Log{}}
	srv := sshtest.StartInProcess(t, sshtest.Options{Serve: d.Serve})
	t.Setenv("SSHJOBS_DEVICES", "web-*, sshtest-in*")
	cfg := testConfig(t, srv, t.TempDir())
	if !slices.Equal(cfg.Devices, []string{"web-*", "sshtest-in*"}) {
		t.Fatalf("devices %q", cfg.Devices)
	}
	c := newMCPClient(t, cfg)
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "/system identity print"})
	if v.State != jobs.StateSucceeded || v.ExitCode != nil || v.Output != "  name: MikroTik\n" || v.Cwd != "[admin@MikroTik] >" {
		t.Fatalf("ssh_run: %+v", v)
	}
	if got := d.Log.Lines(); !slices.Equal(got, []string{"/system identity print without-paging"}) {
		t.Errorf("lines the device ran: %q", got)
	}
	t.Setenv("SSHJOBS_DEVICES", "[")
	var bad config
	if err := parseFlags(newFlags("test", "", nil, &bad), &bad, nil); err == nil || !strings.Contains(err.Error(), "-devices") {
		t.Errorf("a bad pattern: %v", err)
	}
}

// A device's enable secret, asked through URL elicitation when the device
// is in user mode, enable wants a secret and no source has it: it is tried
// on the device before the job, held (not asked again) and stored only
// when "remember" was ticked; a refused one is an error and not stored; a
// declined one is an error once, then commands run in user mode without
// asking. A client without URL elicitation runs in user mode as before.
func TestURLElicitationEnable(t *testing.T) {
	d := &devicetest.IOS{EnableSecret: "elicit-enable-1", Log: &devicetest.Log{}}
	srv := sshtest.StartInProcess(t, sshtest.Options{Serve: d.Serve})
	cfg := func() config {
		cfg := testConfig(t, srv, t.TempDir())
		cfg.master, cfg.Devices = "elicit-master", []string{srv.Alias}
		return cfg
	}
	privileged := map[string]any{"host": srv.Alias, "command": "show running-config | include hostname"}

	t.Run("remember", func(t *testing.T) {
		var asked []string
		c, calls := elicitMCP(t, cfg(), true, answerPage(t, "elicit-enable-1", true, &asked))
		v := c.job("ssh_run", privileged)
		if v.State != jobs.StateSucceeded || v.Output != "hostname R1\n" || v.Cwd != "R1#" || *calls != 1 ||
			!strings.Contains(asked[0], "the enable secret of the network device ") {
			t.Fatalf("run: %+v asked %q", v, asked)
		}
		if k := storedKinds(c); k != "enable" {
			t.Errorf("stored %q, want enable", k)
		}
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show clock", "session": "other"}); v.State != jobs.StateSucceeded || v.Cwd != "R1#" || *calls != 1 {
			t.Errorf("a second session: %+v, calls %d", v, *calls)
		}
	})

	t.Run("refused", func(t *testing.T) {
		var asked []string
		c, calls := elicitMCP(t, cfg(), true, answerPage(t, "wrong-enable", true, &asked))
		res := c.call("ssh_run", privileged)
		if !res.IsError || *calls != 1 || !strings.Contains(text(res), "refused the enable secret typed on the page; the command was not run: call again to type it again") {
			t.Errorf("wrong secret: calls %d %q", *calls, text(res))
		}
		assertNoSecret(t, "error", text(res), "wrong-enable")
		if k := storedKinds(c); k != "" {
			t.Errorf("a refused secret was stored: %q", k)
		}
		if res := c.call("ssh_jobs", map[string]any{}); strings.Contains(text(res), "running-config") {
			t.Errorf("a job exists: %q", text(res))
		}
	})

	t.Run("decline", func(t *testing.T) {
		c, calls := elicitMCP(t, cfg(), true, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "decline"} })
		res := c.call("ssh_run", privileged)
		if !res.IsError || *calls != 1 || !strings.Contains(text(res), "the user did not open the page (decline)") ||
			!strings.Contains(text(res), "_ENABLE_PASS in sshjobs' environment, or save it with `sshjobs secret set "+srv.Alias+" --kind enable`") {
			t.Errorf("decline: calls %d %q", *calls, text(res))
		}
		v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show clock"})
		if v.State != jobs.StateSucceeded || v.Cwd != "R1>" || *calls != 1 {
			t.Errorf("after a decline: %+v, calls %d", v, *calls)
		}
	})

	t.Run("form only", func(t *testing.T) {
		c, calls := elicitMCP(t, cfg(), false, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "accept"} })
		v := c.job("ssh_run", privileged)
		if v.State != jobs.StateFailed || v.Cwd != "R1>" || *calls != 0 || !strings.HasPrefix(v.Error, "% Invalid input") {
			t.Errorf("form only: %+v, calls %d", v, *calls)
		}
	})
	for _, l := range d.Log.Lines() {
		if strings.Contains(l, "enable-1") || strings.Contains(l, "wrong-enable") {
			t.Errorf("a secret was typed as a command: %q", l)
		}
	}
}

// The enable secret's page through the daemon: the front's client is
// asked, the daemon's job runs in enable mode, and "remember" stores it.
func TestDaemonURLElicitationEnable(t *testing.T) {
	d := &devicetest.IOS{EnableSecret: "daemon-enable-1"}
	srv := sshtest.StartInProcess(t, sshtest.Options{Serve: d.Serve})
	bin, env := daemonSetup(t, srv)
	env = with(env, "SSHJOBS_DEVICES="+srv.Alias, "SSHJOBS_MASTER_PASSWORD=daemon-enable-m")
	var asked []string
	client, _ := elicitingClient(true, answerPage(t, "daemon-enable-1", true, &asked))
	c := startBinaryClient(t, bin, env, client, &sshtest.Buffer{})
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show running-config | include hostname"})
	if v.State != jobs.StateSucceeded || v.Output != "hostname R1\n" || v.Cwd != "R1#" || len(asked) != 1 {
		t.Fatalf("ssh_run through the daemon: %+v, asked %q", v, asked)
	}
	if k := storedKinds(c.mcpClient); k != "enable" {
		t.Errorf("stored %q, want enable (remember ticked)", k)
	}
}

// ssh_connect device: true on a host with a shell is undone by device:
// false (not by a call without it): the session start fails fast with
// that advice until then, and ssh_run works after it.
func TestMCPDeviceUndo(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	res := c.call("ssh_connect", map[string]any{"host": srv.Alias, "device": true})
	if res.IsError || !strings.Contains(text(res), "remote: a POSIX shell, named a network device: call ssh_connect with device false") {
		t.Fatalf("ssh_connect device true: %s", text(res))
	}
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo ok"})
	if v.State != jobs.StateError || !strings.Contains(v.Error, "call ssh_connect with device false") {
		t.Fatalf("ssh_run on a shell named a device: %+v", v)
	}
	// Absent, the parameter changes nothing.
	if res := c.call("ssh_connect", map[string]any{"host": srv.Alias}); !strings.Contains(text(res), "named a network device") {
		t.Errorf("ssh_connect without device: %s", text(res))
	}
	res = c.call("ssh_connect", map[string]any{"host": srv.Alias, "device": false})
	if res.IsError || !strings.Contains(text(res), "remote: Linux") {
		t.Fatalf("ssh_connect device false: %s", text(res))
	}
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo ok"}); v.State != jobs.StateSucceeded || v.Output != "ok\n" {
		t.Errorf("ssh_run after device false: %+v", v)
	}
}

// The file tools on a network device without SFTP: a tool error that says
// so, each in well under the device start timeout, and the device's CLI
// works after them.
func TestMCPDeviceFiles(t *testing.T) {
	d := &devicetest.IOS{}
	srv := sshtest.StartInProcess(t, sshtest.Options{Serve: d.Serve})
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "up.txt"), []byte("x"), 0o600)
	c := newMCPClientOpts(t, testConfig(t, srv, t.TempDir()), false, root)
	c.call("ssh_connect", map[string]any{"host": srv.Alias, "device": true})
	for _, call := range []struct {
		name string
		args map[string]any
	}{
		{"ssh_read_file", map[string]any{"host": srv.Alias, "path": "flash:/config.text"}},
		{"ssh_write_file", map[string]any{"host": srv.Alias, "path": "flash:/x", "content": "x"}},
		{"ssh_write_file", map[string]any{"host": srv.Alias, "path": "/x", "content": "x", "sudo": true}},
		{"ssh_list_dir", map[string]any{"host": srv.Alias, "path": "/"}},
		{"ssh_upload", map[string]any{"host": srv.Alias, "local": "up.txt", "remote": "/x"}},
		{"ssh_download", map[string]any{"host": srv.Alias, "remote": "/x", "local": "down.txt"}},
	} {
		start := time.Now()
		msg := c.toolErr(call.name, call.args)
		if !strings.Contains(msg, "the network device has no SFTP server, which the file tools need: use the device's own commands through ssh_run") {
			t.Errorf("%s: %q", call.name, msg)
		}
		if took := time.Since(start); took >= 15*time.Second {
			t.Errorf("%s took %v", call.name, took)
		}
	}
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "show clock"}); v.State != jobs.StateSucceeded {
		t.Errorf("ssh_run after: %+v", v)
	}
}

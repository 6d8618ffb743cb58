package sessions

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/devicetest"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// TestHelperDevice is not a test: with devicetest.EnvDevice set, sshd's
// ForceCommand runs the test binary as a device CLI on the session's
// terminal (devicetest.HelperMain).
func TestHelperDevice(t *testing.T) { devicetest.HelperMain() }

const testEnableSecret = "en4ble-s3cret"

// deviceServer is a device CLI behind one of the test servers: in-process
// (the CLI on the SSH channel) or the real OpenSSH sshd (the CLI on a real
// PTY, as its ForceCommand). log is the in-process CLI's (nil for openssh,
// whose CLI runs in another process).
type deviceServer struct {
	srv *sshtest.Server
	log *devicetest.Log
}

func startIOS(t *testing.T, kind sshtest.Kind, d *devicetest.IOS) deviceServer {
	t.Helper()
	return startCLI(t, kind, "ios", d.EnableSecret, &d.Log, d.Serve)
}

func startRouterOS(t *testing.T, kind sshtest.Kind, d *devicetest.RouterOS) deviceServer {
	t.Helper()
	return startCLI(t, kind, "routeros", "", &d.Log, d.Serve)
}

func startJunos(t *testing.T, kind sshtest.Kind, d *devicetest.Junos) deviceServer {
	t.Helper()
	return startCLI(t, kind, "junos", "", &d.Log, d.Serve)
}

// startCLI starts a device CLI: serve in-process, recording the lines it
// runs in a new *log; or the CLI named device (with its enable secret)
// behind the real sshd.
func startCLI(t *testing.T, kind sshtest.Kind, device, secret string, log **devicetest.Log, serve func(io.ReadWriter, string)) deviceServer {
	t.Helper()
	if kind == sshtest.KindOpenSSH {
		return deviceServer{srv: startDeviceOpenSSH(t, device, secret)}
	}
	*log = &devicetest.Log{}
	return deviceServer{srv: sshtest.StartInProcess(t, sshtest.Options{Serve: serve}), log: *log}
}

// startDeviceOpenSSH starts the real sshd with the test binary as its
// ForceCommand, running the named device CLI.
func startDeviceOpenSSH(t *testing.T, device, secret string) *sshtest.Server {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{devicetest.EnvDevice + "=" + device}
	if secret != "" {
		env = append(env, devicetest.EnvEnableSecret+"="+secret)
	}
	return sshtest.StartOpenSSH(t, sshtest.Options{
		SSHDConfig: []string{"ForceCommand " + exe + " -test.run=^TestHelperDevice$"},
		Env:        env,
	})
}

// eachDevice runs f against the in-process server and the real sshd.
func eachDevice(t *testing.T, f func(t *testing.T, kind sshtest.Kind)) {
	for _, k := range []sshtest.Kind{sshtest.KindInProcess, sshtest.KindOpenSSH} {
		t.Run(string(k), func(t *testing.T) { f(t, k) })
	}
}

// envGetter is an environment of its own for EnvSecrets.
func envGetter(kv ...string) func(string) string {
	return func(name string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == name {
				return kv[i+1]
			}
		}
		return ""
	}
}

func newDevicePool(t *testing.T, srv *sshtest.Server, cfg PoolConfig, env ...string) *Pool {
	t.Helper()
	p := newTestPool(t, srv, cfg)
	p.cfg.Dialer.Secrets = sshdial.EnvSecrets{Getenv: envGetter(env...)}
	return p
}

// devJob runs one device job and checks what every device job has: no exit
// code, ever.
func devJob(t *testing.T, p *Pool, srv *sshtest.Server, command string) (*testTask, jobs.Result) {
	t.Helper()
	task, res := runJob(t, p, srv, "default", command)
	if res.ExitCode != nil {
		t.Errorf("%q: exit code %d, want none (a device has no exit codes)", command, *res.ExitCode)
	}
	return task, res
}

func wantDevJob(t *testing.T, p *Pool, srv *sshtest.Server, command string, state jobs.State) string {
	t.Helper()
	task, res := devJob(t, p, srv, command)
	if res.State != state {
		t.Fatalf("%q: %s %q, want %s; output %q", command, res.State, res.Error, state, task.Output())
	}
	return task.Output()
}

const iosShowVersion = `Cisco IOS-like Software (sshjobs devicetest), Version 15.2(4)M7
Copyright (c) 2026 by the sshjobs tests

R1 uptime is 1 hour, 2 minutes
System image file is "flash:devicetest.bin"
Processor board ID TEST0001
2 FastEthernet interfaces
Configuration register is 0x2102
`

// An IOS-like device found by the probe: clean output, paging, enable
// mode kept across jobs and entered again after the device dropped it,
// configure mode across calls, errors, a streaming command cancelled.
func TestDeviceIOS(t *testing.T) {
	t.Parallel()
	eachDevice(t, func(t *testing.T, kind sshtest.Kind) {
		d := &devicetest.IOS{EnableSecret: testEnableSecret}
		ds := startIOS(t, kind, d)
		srv := ds.srv
		// The secret by the alias verbatim (OVRD_sshtest-inprocess_ENABLE_PASS).
		p := newDevicePool(t, srv, PoolConfig{}, "OVRD_"+srv.Alias+"_ENABLE_PASS", testEnableSecret)

		start := time.Now()
		task, res := devJob(t, p, srv, "show version")
		took := time.Since(start)
		if res.State != jobs.StateSucceeded || task.Output() != iosShowVersion {
			t.Fatalf("show version: %s %q\n%q\nwant\n%q", res.State, res.Error, task.Output(), iosShowVersion)
		}
		c := p.conns[mustResolve(t, p, srv).Key()]
		detected := time.Duration(c.detectedAfter.Load())
		if detected == 0 {
			t.Fatal("the device was not found by the probe")
		}
		t.Logf("%s: device detected %v after the shell's start; first job (detect, device session, enable, command) took %v", kind, detected, took)
		if res.Cwd != "R1#" {
			t.Errorf("prompt after show version %q, want R1# (enable mode)", res.Cwd)
		}

		// 150 lines of log behind IOS's pager (turned on again), complete.
		wantDevJob(t, p, srv, "terminal length 24", jobs.StateSucceeded)
		out := wantDevJob(t, p, srv, "show logging", jobs.StateSucceeded)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != devicetest.LoggingLines+2 || lines[0] != "Syslog logging: enabled" {
			t.Fatalf("show logging: %d lines, want %d: %q", len(lines), devicetest.LoggingLines+2, out)
		}
		for n := 1; n <= devicetest.LoggingLines; n++ {
			if lines[n+1] != devicetest.LoggingLine(n) {
				t.Fatalf("show logging line %d: %q, want %q", n, lines[n+1], devicetest.LoggingLine(n))
			}
		}

		// Configure mode across calls, then the change in the running config.
		for _, step := range []struct{ cmd, prompt string }{
			{"configure terminal", "R1(config)#"},
			{"interface FastEthernet0/1", "R1(config-if)#"},
			{"description uplink to core", "R1(config-if)#"},
			{"no shutdown", "R1(config-if)#"},
			{"end", "R1#"},
		} {
			_, res := devJob(t, p, srv, step.cmd)
			if res.State != jobs.StateSucceeded || res.Cwd != step.prompt {
				t.Fatalf("%q: %s %q at %q, want succeeded at %q", step.cmd, res.State, res.Error, res.Cwd, step.prompt)
			}
		}
		if out := wantDevJob(t, p, srv, "show running-config | include description", jobs.StateSucceeded); out != " description uplink to core\n" {
			t.Errorf("show running-config | include: %q", out)
		}

		// The device's errors fail the job with its message.
		for _, tc := range []struct{ cmd, msg, out string }{
			{"show vresion", "% Invalid input detected at '^' marker.", "        ^\n% Invalid input detected at '^' marker.\n\n"},
			{"show", "% Incomplete command.", "% Incomplete command.\n\n"},
			{"t 10.0.0.2", `% Ambiguous command:  "t 10.0.0.2"`, "% Ambiguous command:  \"t 10.0.0.2\"\n"},
			{"frobnicate", "% Unknown command or computer name, or unable to find computer address", "Translating \"frobnicate\"\n% Unknown command or computer name, or unable to find computer address\n"},
		} {
			task, res := devJob(t, p, srv, tc.cmd)
			if res.State != jobs.StateFailed || res.Error != tc.msg || task.Output() != tc.out {
				t.Errorf("%q: %s %q %q, want failed %q %q", tc.cmd, res.State, res.Error, task.Output(), tc.msg, tc.out)
			}
		}

		// A streaming command: output arrives while it runs; a cancel stops
		// it (^C) and the session goes on.
		task = newTestTask()
		done := make(chan jobs.Result, 1)
		go func() { done <- runTask(p, srv, "default", "ping 10.0.0.9 repeat 100000", task) }()
		task.waitOutput(t, "!!!!!!")
		task.controls <- jobs.Control{Signal: "INT"}
		res = <-done
		if res.State != jobs.StateCancelled || res.Signal != "INT" || res.ExitCode != nil {
			t.Fatalf("cancelled ping: %s %q %q exit %s", res.State, res.Signal, res.Error, code(res))
		}
		if !strings.Contains(task.Output(), "Success rate is 100 percent") || !strings.HasPrefix(task.Output(), "Type escape sequence to abort.\n") {
			t.Errorf("cancelled ping output %q", task.Output())
		}
		task, res = devJob(t, p, srv, "show clock")
		if res.State != jobs.StateSucceeded || task.Output() != "*12:00:00.000 UTC Wed Dec 2 2026\n" || len(task.starts) != 1 || task.starts[0].NewShell {
			t.Errorf("after the cancel: %s %q %q starts %v", res.State, res.Error, task.Output(), task.starts)
		}
		if ds.log != nil {
			if n := count(ds.log.Lines(), "enable"); n != 1 {
				t.Errorf("enable typed %d times, want once for the session: %q", n, ds.log.Lines())
			}
			if slices.ContainsFunc(ds.log.Lines(), func(l string) bool { return strings.Contains(l, testEnableSecret) }) {
				t.Error("the enable secret was run as a command")
			}
		}
	})
}

func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

func mustResolve(t *testing.T, p *Pool, srv *sshtest.Server) *sshconfig.Host {
	t.Helper()
	h, err := p.Resolve(context.Background(), srv.Alias)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A device that drops out of enable mode (an exec timeout) is put back in
// it before the next command.
func TestDeviceEnableAgain(t *testing.T) {
	t.Parallel()
	const drop = 500 * time.Millisecond
	d := &devicetest.IOS{EnableSecret: testEnableSecret, DropAfter: drop}
	ds := startIOS(t, sshtest.KindInProcess, d)
	p := newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}}, "OVRD_SSHTEST_INPROCESS_ENABLE_PASS", testEnableSecret)
	wantDevJob(t, p, ds.srv, "show running-config | include hostname", jobs.StateSucceeded)
	// The device's own timer is the condition here: it drops enable mode
	// once a line comes after `drop` without one.
	time.Sleep(2 * drop)
	if out := wantDevJob(t, p, ds.srv, "show running-config | include hostname", jobs.StateSucceeded); out != "hostname R1\n" {
		t.Errorf("after the drop: %q", out)
	}
	if n := count(ds.log.Lines(), "enable"); n != 2 {
		t.Errorf("enable typed %d times, want twice (again after the drop): %q", n, ds.log.Lines())
	}
}

// Enable asks under other prompts than `Password: ` on other CLIs: the
// secret is typed all the same, and an EdgeSwitch-like device (its prompt
// `(EdgeSwitch) >`) enters enable mode too.
func TestDeviceEnablePrompts(t *testing.T) {
	for _, d := range []*devicetest.IOS{
		{EnablePrompt: "Enable Password:   "},
		{EnablePrompt: "enable password:"},
		{EnablePrompt: "Password:\t"},
		{EnablePrompt: "Password:", Hostname: "(EdgeSwitch) "},
	} {
		d.EnableSecret = testEnableSecret
		ds := startIOS(t, sshtest.KindInProcess, d)
		p := newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}}, "OVRD_SSHTEST_INPROCESS_ENABLE_PASS", testEnableSecret)
		_, res := devJob(t, p, ds.srv, "show clock")
		want := "R1#"
		if d.Hostname != "" {
			want = d.Hostname + "#"
		}
		if res.State != jobs.StateSucceeded || res.Cwd != want {
			t.Errorf("enable prompt %q: %s %q, prompt %q, want %q", d.EnablePrompt, res.State, res.Error, res.Cwd, want)
		}
	}
}

// A Junos-like device in configuration mode: the context line before each
// prompt ([edit], [edit interfaces ge-0/0/0]) and the blank line before it
// are not output; the same lines inside a command's output are.
func TestDeviceJunos(t *testing.T) {
	eachDevice(t, func(t *testing.T, kind sshtest.Kind) {
		ds := startJunos(t, kind, &devicetest.Junos{})
		p := newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"sshtest-*"}})
		for _, step := range []struct{ command, output, cwd string }{
			{"configure", "Entering configuration mode\n", "admin@mx1#"},
			{"edit interfaces ge-0/0/0", "", "admin@mx1#"},
			{"set description uplink", "", "admin@mx1#"},
			{"show | compare", "[edit interfaces ge-0/0/0]\n+   description uplink;\n", "admin@mx1#"},
			{"top\ncommit", "commit complete\n", "admin@mx1#"},
			{"exit", "Exiting configuration mode\n", "admin@mx1>"},
			{"show configuration", "set interfaces ge-0/0/0 description uplink\n", "admin@mx1>"},
		} {
			task, res := devJob(t, p, ds.srv, step.command)
			if res.State != jobs.StateSucceeded || task.Output() != step.output || res.Cwd != step.cwd {
				t.Errorf("%q: %s %q, output %q, prompt %q; want output %q, prompt %q", step.command, res.State, res.Error, task.Output(), res.Cwd, step.output, step.cwd)
			}
		}
		if out := wantDevJob(t, p, ds.srv, "configure\nfrobnicate", jobs.StateFailed); out != "Entering configuration mode\nsyntax error.\n" {
			t.Errorf("an error in configuration mode: %q", out)
		}
	})
}

// A wrong enable secret ends the job in error within seconds, and its
// command is never typed.
func TestDeviceEnableWrong(t *testing.T) {
	t.Parallel()
	eachDevice(t, func(t *testing.T, kind sshtest.Kind) {
		ds := startIOS(t, kind, &devicetest.IOS{EnableSecret: testEnableSecret})
		// The upper-cased name (OVRD_SSHTEST_OPENSSH_ENABLE_PASS).
		p := newDevicePool(t, ds.srv, PoolConfig{}, sshconfig.EnvName(ds.srv.Alias)+"ENABLE_PASS", "wrong-secret")
		start := time.Now()
		task, res := devJob(t, p, ds.srv, "show running-config")
		took := time.Since(start)
		if res.State != jobs.StateError || !strings.Contains(res.Error, "refused the enable secret (% Bad secrets)") ||
			!strings.Contains(res.Error, "the command was not run") || !strings.Contains(res.Error, sshconfig.EnvName(ds.srv.Alias)+"ENABLE_PASS") {
			t.Fatalf("wrong secret: %s %q", res.State, res.Error)
		}
		if took > 15*time.Second {
			t.Errorf("a wrong enable secret took %v to fail the job, want under 15s", took)
		}
		if strings.Contains(task.Output()+res.Error, "wrong-secret") {
			t.Error("the secret is in the job's output or error")
		}
		if ds.log != nil && slices.Contains(ds.log.Lines(), "show running-config") {
			t.Errorf("the command was typed: %q", ds.log.Lines())
		}
	})
}

// A RouterOS-like device: print gets without-paging at the root (with /)
// and in a menu, nowhere else; its pager, when print is left as typed, is
// advanced and the output complete; a rename is followed; errors; a
// streaming command cancelled.
func TestDeviceRouterOS(t *testing.T) {
	t.Parallel()
	eachDevice(t, func(t *testing.T, kind sshtest.Kind) {
		ds := startRouterOS(t, kind, &devicetest.RouterOS{})
		srv := ds.srv
		p := newDevicePool(t, srv, PoolConfig{})
		// Connect's exec probe gets no POSIX answer; the default session
		// then finds the device and its CLI.
		info, err := p.Connect(context.Background(), mustResolve(t, p, srv))
		if err != nil || info.Remote != "network device (RouterOS, prompt [admin@MikroTik] >)" {
			t.Fatalf("Connect: %q %v", info.Remote, err)
		}
		out := wantDevJob(t, p, srv, "/log print", jobs.StateSucceeded)
		wantLog(t, out)

		task, res := devJob(t, p, srv, "/interface")
		if res.State != jobs.StateSucceeded || res.Cwd != "[admin@MikroTik] /interface>" || task.Output() != "" {
			t.Fatalf("/interface: %s %q at %q output %q", res.State, res.Error, res.Cwd, task.Output())
		}
		if out := wantDevJob(t, p, srv, "print", jobs.StateSucceeded); !strings.Contains(out, " 1 R  ether2   ether  1500\n") || strings.HasPrefix(out, "print") {
			t.Errorf("print in /interface: %q", out)
		}
		if out := wantDevJob(t, p, srv, `:put "print"`, jobs.StateFailed); out != "bad command name :put (line 1 column 1)\n" {
			// :put is the root's: in a menu RouterOS does not know it.
			t.Errorf(":put in a menu: %q", out)
		}
		wantDevJob(t, p, srv, "/", jobs.StateSucceeded)
		if out := wantDevJob(t, p, srv, `:put "print"`, jobs.StateSucceeded); out != "print\n" {
			t.Errorf(":put: %q", out)
		}
		// A rename changes the prompt; the session follows it.
		wantDevJob(t, p, srv, "/system identity set name=core-rtr", jobs.StateSucceeded)
		task, res = devJob(t, p, srv, "/system identity print")
		if res.State != jobs.StateSucceeded || task.Output() != "  name: core-rtr\n" || res.Cwd != "[admin@core-rtr] >" {
			t.Errorf("after the rename: %s %q %q at %q", res.State, res.Error, task.Output(), res.Cwd)
		}
		task, res = devJob(t, p, srv, "frobnicate")
		if res.State != jobs.StateFailed || res.Error != "bad command name frobnicate (line 1 column 1)" {
			t.Errorf("bad command: %s %q %q", res.State, res.Error, task.Output())
		}

		task = newTestTask()
		done := make(chan jobs.Result, 1)
		go func() { done <- runTask(p, srv, "default", "/interface monitor-traffic ether1", task) }()
		task.waitOutput(t, "sample: 3 ")
		task.controls <- jobs.Control{Signal: "INT"}
		res = <-done
		if res.State != jobs.StateCancelled || res.ExitCode != nil || !strings.HasPrefix(task.Output(), "  name: ether1 sample: 1 rx-bits-per-second: 1001bps\n") {
			t.Fatalf("cancelled monitor: %s %q %q", res.State, res.Error, task.Output())
		}
		if out := wantDevJob(t, p, srv, "/interface print", jobs.StateSucceeded); !strings.Contains(out, "ether2") {
			t.Errorf("after the cancel: %q", out)
		}
		if ds.log != nil {
			want := []string{"/log print without-paging", "/interface", "print without-paging", `:put "print"`, "/", `:put "print"`,
				"/system identity set name=core-rtr", "/system identity print without-paging", "frobnicate",
				"/interface monitor-traffic ether1", "/interface print without-paging"}
			if got := afterProbe(ds.log.Lines()); !slices.Equal(got, want) {
				t.Errorf("lines the device ran:\n%q\nwant\n%q", got, want)
			}
		}
	})
}

// afterProbe drops the lines of the shell's init script that the probe
// typed, up to its ready marker's line.
func afterProbe(lines []string) []string {
	for i, l := range lines {
		if strings.Contains(l, `\036R_`) {
			return lines[i+1:]
		}
	}
	return lines
}

func wantLog(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != devicetest.LogLines {
		t.Fatalf("/log print: %d lines, want %d: %q", len(lines), devicetest.LogLines, out)
	}
	for n := 1; n <= devicetest.LogLines; n++ {
		if lines[n-1] != devicetest.LogLine(n) {
			t.Fatalf("/log print line %d: %q, want %q", n, lines[n-1], devicetest.LogLine(n))
		}
	}
}

// With the print rewrite off, RouterOS's own pager shows; it is advanced
// and taken out, and the output is complete.
func TestDeviceRouterOSPager(t *testing.T) {
	t.Parallel()
	ds := startRouterOS(t, sshtest.KindInProcess, &devicetest.RouterOS{})
	p := newDevicePool(t, ds.srv, PoolConfig{DevicePrintAsIs: true})
	wantLog(t, wantDevJob(t, p, ds.srv, "/log print", jobs.StateSucceeded))
	if got := afterProbe(ds.log.Lines()); !slices.Equal(got, []string{"/log print"}) {
		t.Errorf("lines the device ran: %q", got)
	}
}

// A host named a device (PoolConfig.Devices, ssh_connect's device) gets no
// shell probe: nothing of the init script reaches its CLI. Connect reports
// the device and its CLI; sudo and detach are refused.
func TestDeviceByName(t *testing.T) {
	t.Parallel()
	ds := startIOS(t, sshtest.KindInProcess, &devicetest.IOS{EnableSecret: testEnableSecret})
	p := newDevicePool(t, ds.srv, PoolConfig{Devices: []string{"nomatch", "sshtest-in*"}})
	h := mustResolve(t, p, ds.srv)
	info, err := p.Connect(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if info.Remote != "network device (IOS-style, prompt R1>)" {
		t.Errorf("Connect: remote %q", info.Remote)
	}
	if !p.IsDevice(h) {
		t.Error("IsDevice is false")
	}
	if snap := p.Snapshot(); len(snap) != 1 || snap[0].Device != "network device (IOS-style, prompt R1>)" {
		t.Errorf("Snapshot: %+v", snap)
	}
	// No enable secret: user mode, and a privileged command fails with the
	// device's message.
	task, res := devJob(t, p, ds.srv, "show running-config")
	if res.State != jobs.StateFailed || res.Error != "% Invalid input detected at '^' marker." {
		t.Errorf("without an enable secret: %s %q %q", res.State, res.Error, task.Output())
	}
	if got := ds.log.Lines(); !slices.Equal(got, []string{"terminal length 0", "show running-config"}) {
		t.Errorf("lines the device ran: %q", got)
	}

	// A command that logs out ends the session; the next job gets a new one.
	task, res = devJob(t, p, ds.srv, "exit")
	if res.State != jobs.StateSucceeded || res.Error != msgDeviceEnded || task.Output() != "" {
		t.Errorf("exit: %s %q %q", res.State, res.Error, task.Output())
	}
	task, res = devJob(t, p, ds.srv, "show clock")
	if res.State != jobs.StateSucceeded || len(task.starts) != 1 || !task.starts[0].NewShell {
		t.Errorf("after exit: %s %q %q starts %v", res.State, res.Error, task.Output(), task.starts)
	}

	for _, j := range []*jobs.Job{
		{ID: "sudo-1", Target: ds.srv.Alias, Session: "default", Command: "show version", Sudo: true},
		{ID: "detach-1", Target: ds.srv.Alias, Session: "other", Command: "show version", Detached: true},
	} {
		d, err := executor(p).ResolveDestination(context.Background(), j.Target)
		if err != nil {
			t.Fatal(err)
		}
		j.Host, j.Destination = d.Key, d.Spec
		res := executor(p).Run(context.Background(), j, newTestTask())
		if res.State != jobs.StateError || !strings.Contains(res.Error, "does not apply to a network device") {
			t.Errorf("%s: %s %q", j.ID, res.State, res.Error)
		}
	}
}

func TestRewritePrint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line   string
		inMenu bool
		want   string
	}{
		{"/log print", false, "/log print without-paging"},
		{"/ip address print where interface=ether1", false, "/ip address print without-paging where interface=ether1"},
		{"print", true, "print without-paging"},
		{"ethernet print detail", true, "ethernet print without-paging detail"},
		{"print", false, "print"},
		{"log print", false, "log print"},
		{"/log print without-paging", false, "/log print without-paging"},
		{`:put "print"`, false, `:put "print"`},
		{"/system identity set name=print", false, "/system identity set name=print"},
		{":foreach i in=[/log find] do={/log print}", false, ":foreach i in=[/log find] do={/log print}"},
		{"/interface monitor-traffic ether1", false, "/interface monitor-traffic ether1"},
	} {
		if got := rewritePrint(tc.line, tc.inMenu); got != tc.want {
			t.Errorf("rewritePrint(%q, %v) = %q, want %q", tc.line, tc.inMenu, got, tc.want)
		}
	}
}

// A POSIX host named a device (a Devices pattern, or ssh_connect's device)
// fails its session start at the shell's prompt, not after the device
// start timeout, saying how to undo that; MarkDevice false undoes it, over
// the pattern and on the open connection, and the next job gets a shell.
func TestDeviceNamedShell(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newDevicePool(t, srv, PoolConfig{Devices: []string{"sshtest-*"}})
		h := mustResolve(t, p, srv)
		info, err := p.Connect(context.Background(), h)
		if err != nil || !strings.Contains(info.Remote, "named a network device: call ssh_connect with device false") {
			t.Errorf("Connect: %q %v", info.Remote, err)
		}
		start := time.Now()
		_, res := runJob(t, p, srv, "default", "echo ok")
		if took := time.Since(start); took >= deviceStartTimeout {
			t.Errorf("the session start failed after %v, the device start timeout", took)
		}
		if res.State != jobs.StateError || !strings.Contains(res.Error, "has a POSIX shell: call ssh_connect with device false") {
			t.Fatalf("on a shell named a device: %s %q", res.State, res.Error)
		}
		p.MarkDevice(h, false)
		if p.IsDevice(h) {
			t.Error("still a device after MarkDevice false")
		}
		if task, res := runJob(t, p, srv, "default", "echo ok"); res.State != jobs.StateSucceeded || task.Output() != "ok\n" {
			t.Errorf("after MarkDevice false: %s %q %q", res.State, res.Error, task.Output())
		}
	})
}

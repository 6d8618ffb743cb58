package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// startBinaryClient starts the built binary as an MCP server for client,
// with its stderr (the daemon's log) into stderr.
func startBinaryClient(t *testing.T, bin string, env []string, client *mcp.Client, stderr *sshtest.Buffer) *stdioServer {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &stdioServer{cmd: cmd, mcpClient: &mcpClient{t: t, cs: cs}}
	t.Cleanup(func() { cs.Close() })
	return s
}

// procStat returns the parent and session ids of pid.
func procStat(pid int) (ppid, sid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...: comm may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 4 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	sid, _ = strconv.Atoi(f[3])
	return ppid, sid, true
}

// ourProcesses lists the descendants of root (the sshjobs process's
// children, e.g. its ProxyCommand) and the processes of session sid with
// their descendants (the remote job's, including those sudo starts in a
// session of its own).
func ourProcesses(root, sid int) (children, remote []int) {
	ents, _ := os.ReadDir("/proc")
	parent, session := map[int]int{}, map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, s, ok := procStat(pid); ok {
			parent[pid], session[pid] = ppid, s
		}
	}
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p != pid && p == root {
				children = append(children, pid)
				break
			}
			if session[p] == sid {
				remote = append(remote, pid)
				break
			}
		}
	}
	return children, remote
}

// The scan: every secret this suite's secret paths use (the master password,
// the OVRD_ passwords in sshjobs' environment, a sudo password typed on the
// elicitation page and remembered, a secret typed with ssh_input) is used by
// the built binary against the real sshd, through a ProxyCommand (a child
// process of sshjobs); then none of them is found in the tool answers, the
// log (stderr at debug level), the database files (db, -wal, -shm) while it
// runs and after SIGKILL, `ps` during the sudo job (the job's remote
// session's lines, read through a job; the whole list, for the secrets that
// are random here: the TestUser password is shared with other tests on this
// machine, whose command lines may hold it), or /proc/*/environ and cmdline
// of sshjobs' children and of the job's remote processes.
func TestSecretsNeverLeak(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{User: sshtest.TestUser})
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgFile := sshtest.WriteFile(t, filepath.Join(dir, "config"), fmt.Sprintf(
		"Host scan\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile %s\n"+
			"  ProxyCommand /bin/bash -c 'exec 3<>/dev/tcp/%s/%d; cat <&3 & exec cat >&3'\n",
		srv.Host, srv.Port, srv.User, srv.KeyFile, srv.KnownHosts, srv.Host, srv.Port))
	master, envPass, envEnable, envKeyPass, typed := "m-"+randomHex(12), "e1-"+randomHex(12), "e2-"+randomHex(12), "e3-"+randomHex(12), "in-"+randomHex(12)
	unique := []string{master, envPass, envEnable, envKeyPass, typed}
	all := append([]string{srv.Password}, unique...)
	names := map[string]string{srv.Password: "the sudo password", master: "the master password", envPass: "OVRD_other_PASS",
		envEnable: "OVRD_scan_ENABLE_PASS", envKeyPass: "OVRD_SCAN_KEY_PASS", typed: "the ssh_input secret"}
	db := filepath.Join(dir, "sshjobs.db")
	env := []string{"SSHJOBS_DB=" + db, "SSHJOBS_SSH_CONFIG=" + cfgFile, "SSHJOBS_DAEMON=off", "SSHJOBS_LOG_LEVEL=debug",
		"SSHJOBS_MASTER_PASSWORD=" + master, "OVRD_other_PASS=" + envPass, "OVRD_scan_ENABLE_PASS=" + envEnable, "OVRD_SCAN_KEY_PASS=" + envKeyPass}

	logs := &sshtest.Buffer{}
	var asked []string
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return answerPage(t, srv.Password, true, &asked)(req.Params), nil
		},
	})
	s := startBinaryClient(t, bin, env, client, logs)
	var answers strings.Builder
	run := func(args map[string]any) *jobView {
		t.Helper()
		res := s.call("ssh_run", args)
		answers.WriteString(text(res))
		var v jobView
		b, _ := json.Marshal(res.StructuredContent)
		if res.IsError || json.Unmarshal(b, &v) != nil {
			t.Fatalf("ssh_run %v: %s", args, text(res))
		}
		return &v
	}

	sidOut := run(map[string]any{"host": "scan", "command": "ps -o sid= -p $$"}).Output
	sid, err := strconv.Atoi(strings.TrimSpace(sidOut))
	if err != nil {
		t.Fatalf("session id: %q", sidOut)
	}
	// sudo with no password anywhere: asked on the page, remembered.
	sudoJob := run(map[string]any{"host": "scan", "command": "echo started; sleep 5; whoami", "sudo": true, "timeout_s": 2})
	if len(asked) != 1 || sudoJob.State != jobs.StateRunning {
		t.Fatalf("sudo job: asked %q, %+v", asked, sudoJob)
	}
	// During the job: the remote process list, and the environment and
	// command line of our processes on both sides.
	// The remote list through a job (its output is stored: only our
	// session's lines and the job's sleep, which sudo starts in a session of
	// its own; other processes on this shared machine may show the test
	// account's password); the whole list, for the secrets random here.
	ps := run(map[string]any{"host": "scan", "session": "ps",
		"command": fmt.Sprintf("ps -eo sid,args | awk -v ours=%d '$1 == ours || /slee[p] 5/'", sid)}).Output
	if !strings.Contains(ps, "sleep 5") || !strings.Contains(ps, "sudo") {
		t.Fatalf("ps does not show the job:\n%s", ps)
	}
	for _, sec := range all {
		if strings.Contains(ps, sec) {
			t.Errorf("remote ps shows %s", names[sec])
		}
	}
	whole, err := exec.Command("ps", "-eo", "args").Output()
	if err != nil || !strings.Contains(string(whole), "sleep 5") {
		t.Fatalf("ps: %v", err)
	}
	for _, sec := range unique {
		if strings.Contains(string(whole), sec) {
			t.Errorf("ps shows %s", names[sec])
		}
	}
	children, remote := ourProcesses(s.cmd.Process.Pid, sid)
	var sawSudo bool
	for _, pid := range append(children, remote...) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		sawSudo = sawSudo || strings.Contains(string(cmdline), "sleep\x005")
		for _, sec := range all {
			if strings.Contains(string(cmdline), sec) || strings.Contains(string(environ), sec) {
				t.Errorf("process %d (%q) holds %s in its command line or environment", pid, strings.ReplaceAll(string(cmdline), "\x00", " "), names[sec])
			}
		}
	}
	if len(children) == 0 || !sawSudo {
		t.Errorf("the scan missed processes: %d children (the ProxyCommand), the job's sleep %v", len(children), sawSudo)
	}

	// A secret typed into a job.
	in := run(map[string]any{"host": "scan", "session": "input", "command": "read -rsp 'Password: ' x; echo; echo got ${#x}", "timeout_s": 10})
	if in.State != jobs.StateWaitingInput {
		t.Fatalf("input job: %+v", in)
	}
	res := s.call("ssh_input", map[string]any{"job_id": in.JobID, "text": typed, "secret": true, "wait_s": 10})
	answers.WriteString(text(res))
	if !strings.Contains(text(res), fmt.Sprintf("got %d", len(typed))) {
		t.Errorf("input: %q", text(res))
	}
	res = s.call("ssh_job", map[string]any{"job_id": sudoJob.JobID, "wait_s": 30})
	answers.WriteString(text(res))
	if !strings.HasSuffix(text(res), "started\nroot\n") {
		t.Errorf("sudo job: %q", text(res))
	}
	res = s.call("ssh_credentials", map[string]any{"action": "list"})
	answers.WriteString(text(res))
	if !strings.Contains(text(res), "sudo") {
		t.Errorf("the sudo password was not remembered: %q", text(res))
	}

	scanFiles := func(when string) {
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, sec := range all {
				if strings.Contains(string(b), sec) {
					t.Errorf("%s %s holds %s", when, filepath.Base(f), names[sec])
				}
			}
		}
	}
	scanFiles("while running:")
	s.kill()
	scanFiles("after SIGKILL:")
	if logs.Len() == 0 || !strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("no debug log captured: %q", logs.String())
	}
	for _, sec := range all {
		if strings.Contains(logs.String(), sec) {
			t.Errorf("the log holds %s", names[sec])
		}
		if strings.Contains(answers.String(), sec) {
			t.Errorf("a tool answer holds %s", names[sec])
		}
	}
	t.Logf("scanned %d child and %d remote processes, %d bytes of log, %d bytes of ps", len(children), len(remote), logs.Len(), len(ps))
}

// A password login to the real sshd with the password only in the store,
// in a new process after the first was killed with SIGKILL: the store and
// its key survive the kill, and the master password alone opens them.
func TestStoredPasswordAfterSIGKILL(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartOpenSSH(t, sshtest.Options{User: sshtest.TestUser, SSHDConfig: []string{"PasswordAuthentication yes"}})
	bin := buildBinary(t)
	env := append(binaryEnv(t, srv), "SSHJOBS_SSH_CONFIG="+passwordOnlyConfig(t, srv), "SSHJOBS_MASTER_PASSWORD=kill-master")

	first := startBinary(t, bin, env)
	res := first.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true})
	if res.IsError || !strings.Contains(text(res), "saved: password") {
		t.Fatalf("first process: %q", text(res))
	}
	running := first.job("ssh_run", map[string]any{"host": "pw", "command": "sleep 30", "timeout_s": 0})
	first.kill()

	second := startBinary(t, bin, env)
	res = second.call("ssh_connect", map[string]any{"host": "pw"})
	var out connectOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &out) != nil || out.AuthMethod != "password" || out.Reused {
		t.Fatalf("second process connect: %q", text(res))
	}
	if v := second.job("ssh_run", map[string]any{"host": "pw", "command": "whoami", "timeout_s": 120}); v.Output != sshtest.TestUser+"\n" {
		t.Errorf("second process run: %+v", v)
	}
	if v := second.job("ssh_job", map[string]any{"job_id": running.JobID}); v.JobID != running.JobID {
		t.Errorf("the first process's job: %+v", v)
	}
}

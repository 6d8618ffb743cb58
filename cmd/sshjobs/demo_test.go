package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runDemo runs the built binary's demo with args and returns its exit
// error, stdout and stderr. It needs no sshd and no daemon.
func runDemo(t *testing.T, args ...string) (error, string, string, time.Duration) {
	t.Helper()
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"demo"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	return err, stdout.String(), stderr.String(), time.Since(start)
}

var (
	demoDirRE  = regexp.MustCompile(`database  (/\S+)/sshjobs\.db`)
	demoAddrRE = regexp.MustCompile(`on (127\.0\.0\.1:\d+)`)
)

// TestDemo runs `sshjobs demo` as a person would on a machine with no sshd,
// checks the steps it printed, and that it left nothing behind: no process
// its server started, no listening port, no file.
func TestDemo(t *testing.T) {
	before := demoDirs(t)
	err, out, errOut, took := runDemo(t)
	if err != nil {
		t.Fatalf("sshjobs demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	t.Logf("sshjobs demo took %s:\n%s", took, out)
	if took > 15*time.Second {
		t.Errorf("the demo took %s, more than 15s", took)
	}
	for _, want := range []string{
		"verified on connect",
		"1. Run a command", "$ uname -sr", "hello from ", "-> succeeded exit=0, cwd ",
		"2. The session keeps its shell", "$ cd /tmp && export GREETING=hello", "    /tmp\n    hello\n", "exit=0, cwd /tmp",
		"3. A call waits only so long", "-> not done within 1s: handed back job ", "slow command done\n",
		"4. A detached job survives", "stopping the engine", "starting a new engine", "re-attached", "detached job done in /tmp\n",
		"5. The history: sshjobs jobs", "JOB_ID", "STATE",
		"6. The history is SQLite", "SELECT substr(command", "exit_code", "Done in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo did not print %q", want)
		}
	}
	if n := strings.Count(out, "-> succeeded exit=0"); n != 5 {
		t.Errorf("%d jobs succeeded, want 5", n)
	}
	if strings.Contains(errOut, "level=") {
		t.Errorf("the demo logged:\n%s", errOut)
	}
	checkDemoLeftNothing(t, out, before)
}

// TestDemoKeep: --keep keeps the database, and only the database.
func TestDemoKeep(t *testing.T) {
	err, out, errOut, _ := runDemo(t, "--keep")
	if err != nil {
		t.Fatalf("sshjobs demo --keep: %v\n%s\n%s", err, out, errOut)
	}
	m := demoDirRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no database path in:\n%s", out)
	}
	t.Cleanup(func() { os.RemoveAll(m[1]) })
	if !strings.Contains(out, "Kept the database: "+m[1]+"/sshjobs.db") {
		t.Errorf("--keep did not say where the database is:\n%s", out)
	}
	code, list, _ := cli(t, "jobs", "-db", filepath.Join(m[1], "sshjobs.db"))
	if code != 0 || strings.Count(list, "succeeded") != 5 {
		t.Errorf("jobs on the kept database: exit %d\n%s", code, list)
	}
	ents, _ := os.ReadDir(m[1])
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "sshjobs.db") {
			t.Errorf("--keep left %s", e.Name())
		}
	}
}

// TestDemoServe: --serve keeps the server up with a working ssh_config
// entry until interrupted, then removes everything.
func TestDemoServe(t *testing.T) {
	before := demoDirs(t)
	bin := buildBinary(t)
	cmd := exec.Command(bin, "demo", "--serve")
	pr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var head strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.Contains(sc.Text(), "ssh_run host=") {
		head.WriteString(sc.Text() + "\n")
	}
	out := head.String()
	cfgRE := regexp.MustCompile(`-ssh-config (\S+) sshjobs-demo`)
	m := cfgRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, `"mcpServers"`) || !strings.Contains(out, "Host sshjobs-demo") {
		t.Fatalf("--serve printed:\n%s", out)
	}
	db := filepath.Join(t.TempDir(), "db")
	code, got, errOut := cli(t, "run", "-db", db, "-ssh-config", m[1], "sshjobs-demo", "--", "echo", "hi", "from", "$SSHJOBS_DEMO")
	if code != 0 || !strings.HasPrefix(got, "hi from /") {
		t.Errorf("run against the demo server: exit %d, %q, %s", code, got, errOut)
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo --serve after Ctrl-C: %v", err)
	}
	checkDemoLeftNothing(t, out, before)
}

func demoDirs(t *testing.T) map[string]bool {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), "sshjobs-demo-*"))
	set := map[string]bool{}
	for _, p := range m {
		set[p] = true
	}
	return set
}

// checkDemoLeftNothing: the demo's folder is gone (and no other appeared),
// its port listens no more, and no process its server started runs (they
// all carry SSHJOBS_DEMO=<folder> in their environment).
func checkDemoLeftNothing(t *testing.T, out string, before map[string]bool) {
	t.Helper()
	dirM, addrM := demoDirRE.FindStringSubmatch(out), demoAddrRE.FindStringSubmatch(out)
	var dir string
	if dirM != nil {
		dir = dirM[1]
	} else if m := regexp.MustCompile(`removes its keys, config and database \((/\S+)\)`).FindStringSubmatch(out); m != nil {
		dir = m[1]
	}
	if dir == "" || addrM == nil {
		t.Fatalf("no folder or address in:\n%s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo left %s (%v)", dir, err)
	}
	for p := range demoDirs(t) {
		if !before[p] {
			t.Errorf("the demo left %s", p)
		}
	}
	if c, err := net.DialTimeout("tcp", addrM[1], time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s", addrM[1])
	}
	marker := []byte(demoEnv + "=" + dir + "\x00")
	// The server waits for its sessions before the demo exits; a moment
	// for the kernel to reap what it killed last.
	deadline := time.Now().Add(3 * time.Second)
	for {
		var left []string
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err == nil && bytes.Contains(env, marker) {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				left = append(left, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo left processes: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// Every subcommand must be listed in the top-level usage.
var subcommands = []string{"demo", "serve", "run", "jobs", "logs", "cancel", "spools", "daemon", "version", "help"}

func TestHelpFlags(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		code, out, errOut := cli(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, sub := range subcommands {
			if !strings.Contains(out, "sshjobs "+sub) && !strings.Contains(out, "sshjobs ["+sub) {
				t.Errorf("%v: usage does not list %s:\n%s", args, sub, out)
			}
		}
	}
	// help COMMAND is COMMAND -h; every subcommand has -h.
	for _, args := range [][]string{{"help", "run"}, {"run", "-h"}, {"jobs", "-h"}, {"logs", "-h"}, {"cancel", "-h"},
		{"spools", "-h"}, {"daemon", "-h"}, {"serve", "-h"}, {"version", "-h"}, {"demo", "-h"}} {
		code, _, errOut := cli(t, args...)
		if code != 0 || !strings.Contains(errOut, "Usage: sshjobs "+strings.TrimPrefix(args[len(args)-1], "-")) && !strings.Contains(errOut, "Usage: sshjobs "+args[0]) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestHelpOnTerminal: "sshjobs" typed at a terminal explains itself instead
// of waiting for JSON-RPC; with a pipe it serves MCP as an MCP client expects.
func TestHelpOnTerminal(t *testing.T) {
	bin := buildBinary(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(bin)
	cmd.Stdin = tty
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "SSHJOBS_DB="+t.TempDir()+"/db")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sshjobs on a terminal: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sshjobs on a terminal did not return: it waits for MCP\n%s", out.String())
	}
	for _, want := range []string{"Usage:", "sshjobs demo", "is an MCP server", "claude mcp add"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}

	// Not a terminal: the MCP server answers initialize on stdout.
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(), "SSHJOBS_DB="+t.TempDir()+"/db", "SSHJOBS_DAEMON=off")
	if got := initialize(t, cmd); !strings.Contains(string(got), `"serverInfo"`) {
		t.Fatalf("sshjobs on a pipe: %s", got)
	}
}

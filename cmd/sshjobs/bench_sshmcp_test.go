package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// The npm ssh-mcp server (github.com/tufantunc/ssh-mcp), the reference of
// issue 16's warm row: scripts/bench documents how to install the pinned
// version into sshMCPDir.
const sshMCPVersion = "2.11.0"

// sshMCPDir is the npm prefix ssh-mcp is installed into: $SSHJOBS_BENCH_SSH_MCP,
// or the user's cache folder (where scripts/bench installs it).
func sshMCPDir() string {
	if d := os.Getenv("SSHJOBS_BENCH_SSH_MCP"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "sshjobs-bench", "ssh-mcp")
}

// sshMCPVariants returns the warm row's ssh-mcp variants: `true` through
// an interactive session of ssh-mcp (ssh-mcp: its stateful shell, as
// ssh_run's) and through run-command without a session (ssh-mcp-exec: a new
// exec channel on its warm connection, as ssh over a ControlMaster). Both go
// over MCP stdio to the same sshd, the host key pinned (ssh-mcp verifies
// nothing weaker than sshjobs' known_hosts: a key that differs from the pin
// is refused in every mode). Without node or the package it returns none and
// logs why; scripts/bench then prints "not installed".
func sshMCPVariants(b *testing.B, srv *sshtest.Server) []variant {
	node, err := exec.LookPath("node")
	if err != nil {
		b.Log("ssh-mcp: not installed (no node)")
		return nil
	}
	entry := filepath.Join(sshMCPDir(), "node_modules", "ssh-mcp", "build", "index.js")
	pkg, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(entry)), "package.json"))
	if err != nil {
		b.Logf("ssh-mcp: not installed (%v)", err)
		return nil
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(pkg, &meta); err != nil || meta.Version != sshMCPVersion {
		b.Logf("ssh-mcp: not installed (version %q in %s, the table pins %s)", meta.Version, sshMCPDir(), sshMCPVersion)
		return nil
	}
	dir := b.TempDir()
	conf := filepath.Join(dir, "config", "ssh-mcp", "config.toml")
	// ssh-mcp refuses a config folder or file others can read.
	if err := os.MkdirAll(filepath.Dir(conf), 0o700); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(srv.HostKey.Marshal())
	toml := fmt.Sprintf(`[defaults]
defaultProfile = "bench"
approvalMode = "auto"

[[profiles]]
name = "bench"
host = %q
port = %d
user = %q
auth = "key"
keyRef = %q
trustedHostKey = "SHA256:%s"
role = "admin"
group = "dev"
approvalPolicy = "auto"
announceAgent = false
`, srv.Host, srv.Port, srv.User, srv.KeyFile, base64.RawStdEncoding.EncodeToString(sum[:]))
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(node, entry, "--config="+conf, "--hostKeyMode=strict")
	// Its audit log and state go to the benchmark's folder, and no agent
	// offers other keys.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_STATE_HOME="+filepath.Join(dir, "state"), "SSH_AUTH_SOCK=")
	cmd.Stderr = io.Discard
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).
		Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatalf("ssh-mcp: %v", err)
	}
	b.Cleanup(func() { cs.Close() })
	call := func(tool string, args map[string]any) string {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			b.Fatalf("ssh-mcp %s: %v", tool, err)
		}
		if res.IsError {
			b.Fatalf("ssh-mcp %s %v: %s", tool, args, text(res))
		}
		return text(res)
	}
	call("open-session", map[string]any{"name": "bench", "type": "interactive"})
	// The shell really runs what it is given (not an empty success).
	if out := call("run-command", map[string]any{"session": "bench", "command": "echo ready $((6*7))"}); !strings.Contains(out, "ready 42") {
		b.Fatalf("ssh-mcp session: %q", out)
	}
	if out := call("run-command", map[string]any{"command": "echo ready $((6*7))"}); !strings.Contains(out, "ready 42") {
		b.Fatalf("ssh-mcp exec: %q", out)
	}
	return []variant{
		{"ssh-mcp", func() { call("run-command", map[string]any{"session": "bench", "command": "true"}) }},
		{"ssh-mcp-exec", func() { call("run-command", map[string]any{"command": "true"}) }},
	}
}

package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// TestTransferNotRegular: ssh_download of a remote FIFO or device, and
// ssh_upload of a local one, are refused at once. Before, the copy opened
// it: a FIFO with no writer blocked the call (and the server's shutdown)
// forever, and /dev/zero would have filled the disk. Found by
// TestToolArgsFuzzed.
func TestTransferNotRegular(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	cfg := testConfig(t, srv, t.TempDir())
	dir := t.TempDir()
	cfg.AllowLocal = []string{dir}
	c := newMCPClient(t, cfg)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tool          string
		local, remote string
	}{
		{"ssh_download", filepath.Join(dir, "a"), fifo},
		{"ssh_download", filepath.Join(dir, "b"), "/dev/zero"},
		{"ssh_upload", fifo, filepath.Join(dir, "c")},
		{"ssh_upload", "/dev/zero", filepath.Join(dir, "d")},
	} {
		if tc.local == "/dev/zero" {
			cfg.AllowLocal = append(cfg.AllowLocal, "/dev")
			c.a.self.allowLocal = cfg.AllowLocal
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{"host": srv.Alias, "local": tc.local, "remote": tc.remote}})
		cancel()
		if err != nil {
			t.Fatalf("%s %s -> %s: %v", tc.tool, tc.remote, tc.local, err)
		}
		if !res.IsError || !strings.Contains(text(res), "not a regular file") {
			t.Errorf("%s local %s remote %s: isError=%v %q; want a tool error saying not a regular file", tc.tool, tc.local, tc.remote, res.IsError, text(res))
		}
	}
}

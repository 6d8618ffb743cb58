package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/sqlstore"
)

func TestVersionFields(t *testing.T) {
	schema, err := sqlstore.SchemaVersion()
	if err != nil || schema < 4 {
		t.Fatalf("SchemaVersion: %d, %v", schema, err)
	}
	// A checkout with uncommitted changes, built with go build.
	b := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}})
	if b.Version != "dev-0123456789ab+dirty" || b.Module != "" || !b.Modified || b.Time != "2026-01-02T03:04:05Z" ||
		b.Go != runtime.Version() || b.Schema != schema {
		t.Fatalf("checkout: %+v", b)
	}
	// go install ...@v1.2.3: the module version, no VCS stamp.
	if b := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}); b.Version != "v1.2.3" || b.Revision != "" {
		t.Fatalf("release: %+v", b)
	}
	if b := fromBuildInfo(nil); b.Version != "dev" || b.Schema != schema {
		t.Fatalf("no build info: %+v", b)
	}

	code, out, _ := cli(t, "version")
	for _, want := range []string{"sshjobs " + appVersion() + "\n", "go        " + runtime.Version(), "schema    " + strconv.Itoa(schema)} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("version: exit %d, missing %q in:\n%s", code, want, out)
		}
	}
	code, out, _ = cli(t, "version", "-json")
	var got buildInfo
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Schema != schema || got.Version != appVersion() {
		t.Fatalf("version -json: exit %d, %s", code, out)
	}
}

// TestVersionLdflags: -ldflags -X main.version still wins, in `version` and
// in the MCP serverInfo.
func TestVersionLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sshjobs")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sshjobs v9.8.7-test\n") {
		t.Fatalf("version: %v, %q", err, out)
	}
	out = initialize(t, exec.Command(bin, "serve", "-no-daemon", "-db", filepath.Join(t.TempDir(), "db")))
	var resp struct {
		Result struct {
			ServerInfo struct{ Name, Version string } `json:"serverInfo"`
		} `json:"result"`
	}
	if json.Unmarshal(out, &resp) != nil || resp.Result.ServerInfo.Version != "v9.8.7-test" {
		t.Fatalf("serverInfo: %s", out)
	}
}

// initialize sends cmd an MCP initialize request on a pipe and returns the
// first line it answers; stdin stays open until then (at EOF the server
// stops, maybe before answering).
func initialize(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	io.WriteString(in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`+"\n")
	line, err := bufio.NewReader(outPipe).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to initialize: %v", err)
	}
	return line
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// decode calls a tool and decodes its structured content into out; a tool
// error fails the test.
func (c *mcpClient) decode(name string, args map[string]any, out any) string {
	c.t.Helper()
	res := c.call(name, args)
	if res.IsError {
		c.t.Fatalf("%s %.200v: tool error: %s", name, args, text(res))
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatal(err)
	}
	return text(res)
}

// toolErr calls a tool that must fail and returns its error text.
func (c *mcpClient) toolErr(name string, args map[string]any) string {
	c.t.Helper()
	res := c.call(name, args)
	if !res.IsError {
		c.t.Fatalf("%s %.200v: want a tool error, got %s", name, args, text(res))
	}
	return text(res)
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// The file tools through MCP: text and binary round trips, a list, the
// errors a caller acts on, and a job row of kind file for every call, with
// the parameters and never the content in the database.
func TestMCPFiles(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		dir := t.TempDir()
		c := newMCPClient(t, testConfig(t, srv, dir))
		// Content no database page may hold: random, so it cannot occur by chance.
		var r [16]byte
		rand.Read(r[:])
		secret := "CONTENT-" + hex.EncodeToString(r[:])
		textData := "line one: " + secret + "\nzwei: ü\n"

		var w writeFileOut
		c.decode("ssh_write_file", map[string]any{"host": srv.Alias, "path": "~/cfg/app.conf", "content": textData, "make_dirs": true, "mode": "0640"}, &w)
		if !w.Created || w.SHA256 != hexSum([]byte(textData)) || w.Mode != "0640" || w.JobID == "" {
			t.Fatalf("write: %+v", w)
		}
		var rd readFileOut
		c.decode("ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/cfg/app.conf"}, &rd)
		if rd.Content != textData || rd.Encoding != "utf-8" || rd.SHA256 != w.SHA256 || rd.Truncated || rd.Path != filepath.Join(srv.Home, "cfg/app.conf") {
			t.Fatalf("read: %+v", rd)
		}

		bin := append([]byte(secret), 0, 0xff, 0xfe, 1, 2, 3)
		c.decode("ssh_write_file", map[string]any{"host": srv.Alias, "path": "~/cfg/blob", "content": base64.StdEncoding.EncodeToString(bin), "encoding": "base64"}, &w)
		c.decode("ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/cfg/blob"}, &rd)
		got, _ := base64.StdEncoding.DecodeString(rd.Content)
		if rd.Encoding != "base64" || !bytes.Equal(got, bin) || rd.SHA256 != hexSum(bin) {
			t.Fatalf("binary read: %+v", rd)
		}
		// A page that would end inside a UTF-8 character ends before it.
		c.decode("ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/cfg/app.conf", "offset": len(textData) - 4, "max_bytes": 2}, &rd)
		if rd.Encoding != "utf-8" || rd.Content != " " || !rd.Truncated || rd.NextOffset != int64(len(textData)-3) {
			t.Errorf("page ending inside a character: %+v", rd)
		}

		// if_sha256 conflict: refused with the current hash, file untouched.
		msg := c.toolErr("ssh_write_file", map[string]any{"host": srv.Alias, "path": "~/cfg/app.conf", "content": "x", "if_sha256": strings.Repeat("0", 64)})
		if !strings.Contains(msg, hexSum([]byte(textData))) {
			t.Errorf("conflict error does not name the current hash: %s", msg)
		}
		if b, _ := os.ReadFile(filepath.Join(srv.Home, "cfg/app.conf")); string(b) != textData {
			t.Errorf("refused write changed the file: %q", b)
		}

		os.Symlink("app.conf", filepath.Join(srv.Home, "cfg/link"))
		os.WriteFile(filepath.Join(srv.Home, "cfg/.dot"), nil, 0o600)
		var l listDirOut
		out := c.decode("ssh_list_dir", map[string]any{"host": srv.Alias, "path": "~/cfg"}, &l)
		names := []string{}
		for _, e := range l.Entries {
			names = append(names, e.Name+":"+e.Type+":"+e.Target)
		}
		if strings.Join(names, " ") != "app.conf:file: blob:file: link:symlink:app.conf" || l.Total != 3 {
			t.Errorf("list: %v\n%s", names, out)
		}
		c.decode("ssh_list_dir", map[string]any{"host": srv.Alias, "path": "~/cfg", "all": true, "max_entries": 1}, &l)
		if len(l.Entries) != 1 || l.Entries[0].Name != ".dot" || l.Total != 4 || !l.Truncated {
			t.Errorf("list all, max 1: %+v", l)
		}

		for _, tc := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/missing"}, "no such file"},
			{"ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/cfg"}, "is a folder"},
			{"ssh_list_dir", map[string]any{"host": srv.Alias, "path": "~/cfg/blob"}, "is not a folder"},
			{"ssh_read_file", map[string]any{"host": srv.Alias, "path": "~/x", "max_bytes": 3 << 20}, "max_bytes"},
			{"ssh_write_file", map[string]any{"host": srv.Alias, "path": "~/x", "content": strings.Repeat("x", 2<<20+1)}, "at most"},
			{"ssh_write_file", map[string]any{"host": srv.Alias, "path": "~/x", "content": "x", "mode": "9"}, "mode"},
		} {
			if msg := c.toolErr(tc.tool, tc.args); !strings.Contains(msg, tc.want) {
				t.Errorf("%s %v: %s; want %q", tc.tool, tc.args["path"], msg, tc.want)
			}
		}

		// History: every call that reached the host is a file job.
		list, err := c.a.eng.List(context.Background(), jobs.ListFilter{Session: jobs.FileSession, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		states := map[jobs.State]int{}
		for _, j := range list {
			if j.Kind != jobs.KindFile || j.EndedAt.IsZero() {
				t.Errorf("file job %s: kind %q, ended %v", j.ID, j.Kind, j.EndedAt)
			}
			states[j.State]++
		}
		if states[jobs.StateSucceeded] != 7 || states[jobs.StateFailed] != 4 {
			t.Errorf("file jobs by state: %v", states)
		}
		var js jobsOut
		table := c.decode("ssh_jobs", map[string]any{"session": "file", "contains": "write_file"}, &js)
		if len(js.Jobs) != 3 || !strings.Contains(table, `write_file "~/cfg/app.conf"`) {
			t.Errorf("ssh_jobs of the writes:\n%s", table)
		}
		v := c.job("ssh_job", map[string]any{"job_id": w.JobID})
		if v.State != jobs.StateSucceeded || !strings.Contains(v.Output, "sha256="+hexSum(bin)) {
			t.Errorf("ssh_job of a write: %+v", v)
		}
		// No content in the database, its WAL included.
		for _, suffix := range []string{"", "-wal"} {
			db, _ := os.ReadFile(filepath.Join(dir, "sshjobs.db"+suffix))
			if bytes.Contains(db, []byte(secret)) || bytes.Contains(db, []byte(base64.StdEncoding.EncodeToString(bin)[:20])) {
				t.Errorf("sshjobs.db%s holds file content", suffix)
			}
		}
	})
}

// newMCPClientOpts is newMCPClient with the client's roots: none declared
// (noRoots), or these.
func newMCPClientOpts(t *testing.T, cfg config, noRoots bool, roots ...string) *mcpClient {
	t.Helper()
	var opts *mcp.ClientOptions
	if noRoots {
		opts = &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts)
	for _, r := range roots {
		client.AddRoots(&mcp.Root{URI: "file://" + r})
	}
	return connectMCP(t, cfg, client)
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%v, %v)", a, b, err1, err2)
	}
}

// Uploads and downloads, single files and trees, verified by sha256, and
// local paths confined to the client's roots, also through a symlink.
func TestMCPTransfer(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		root := t.TempDir()
		c := newMCPClientOpts(t, testConfig(t, srv, t.TempDir()), false, root)
		big := make([]byte, 3<<20+17)
		rand.Read(big)
		os.WriteFile(filepath.Join(root, "big.bin"), big, 0o640)

		var tr transferOut
		c.decode("ssh_upload", map[string]any{"host": srv.Alias, "local": "big.bin", "remote": "~/up/big.bin", "make_dirs": true}, &tr)
		if tr.Count != 1 || tr.Bytes != int64(len(big)) || tr.Files[0].SHA256 != hexSum(big) || tr.Verified != "sha256sum" {
			t.Fatalf("upload: %+v", tr)
		}
		sameFile(t, filepath.Join(root, "big.bin"), filepath.Join(srv.Home, "up/big.bin"))
		if fi, _ := os.Stat(filepath.Join(srv.Home, "up/big.bin")); fi == nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("uploaded file's mode: %v", fi)
		}
		c.decode("ssh_download", map[string]any{"host": srv.Alias, "remote": "~/up/big.bin", "local": filepath.Join(root, "back", "big.bin"), "make_dirs": true}, &tr)
		if tr.Count != 1 || tr.Files[0].SHA256 != hexSum(big) {
			t.Fatalf("download: %+v", tr)
		}
		sameFile(t, filepath.Join(root, "big.bin"), filepath.Join(root, "back", "big.bin"))

		// A tree, with a symlink to a file inside the roots.
		tree := filepath.Join(root, "tree")
		os.MkdirAll(filepath.Join(tree, "sub", "deeper"), 0o755)
		os.WriteFile(filepath.Join(tree, "a.txt"), []byte("a\n"), 0o644)
		os.WriteFile(filepath.Join(tree, ".hidden"), []byte("h\n"), 0o600)
		os.WriteFile(filepath.Join(tree, "sub", "deeper", "b.txt"), []byte("b\n"), 0o644)
		os.Symlink("a.txt", filepath.Join(tree, "alias"))
		c.decode("ssh_upload", map[string]any{"host": srv.Alias, "local": tree, "remote": "~/tree", "recursive": true, "make_dirs": true}, &tr)
		if tr.Count != 4 {
			t.Errorf("tree upload: %+v", tr)
		}
		for _, f := range []string{"a.txt", ".hidden", "sub/deeper/b.txt"} {
			sameFile(t, filepath.Join(tree, f), filepath.Join(srv.Home, "tree", f))
		}
		c.decode("ssh_download", map[string]any{"host": srv.Alias, "remote": "~/tree", "local": filepath.Join(root, "tree2"), "recursive": true}, &tr)
		if tr.Count != 4 {
			t.Errorf("tree download: %+v", tr)
		}
		for _, f := range []string{"a.txt", ".hidden", "sub/deeper/b.txt", "alias"} {
			sameFile(t, filepath.Join(tree, f), filepath.Join(root, "tree2", f))
		}

		// Outside the roots: refused, also through `..` and symlinks, and
		// nothing is written.
		outside := t.TempDir()
		os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
		os.Symlink(outside, filepath.Join(root, "door"))
		for _, tc := range []struct {
			tool  string
			local string
		}{
			{"ssh_upload", filepath.Join(outside, "secret")},
			{"ssh_upload", filepath.Join(root, "..", filepath.Base(outside), "secret")},
			{"ssh_upload", filepath.Join(root, "door", "secret")},
			{"ssh_download", filepath.Join(root, "door", "new")},
			{"ssh_download", filepath.Join(outside, "new")},
		} {
			msg := c.toolErr(tc.tool, map[string]any{"host": srv.Alias, "local": tc.local, "remote": "~/up/big.bin"})
			if !strings.Contains(msg, "outside the allowed folders") {
				t.Errorf("%s %s: %s", tc.tool, tc.local, msg)
			}
		}
		if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
			t.Errorf("a refused download wrote outside the roots")
		}
		// A symlink inside an uploaded tree that leads out fails the upload.
		os.Symlink(filepath.Join(outside, "secret"), filepath.Join(tree, "leak"))
		if msg := c.toolErr("ssh_upload", map[string]any{"host": srv.Alias, "local": tree, "remote": "~/tree3", "recursive": true, "make_dirs": true}); !strings.Contains(msg, "outside the allowed folders") {
			t.Errorf("tree with a symlink out: %s", msg)
		}
		if _, err := os.Stat(filepath.Join(srv.Home, "tree3", "leak")); err == nil {
			t.Errorf("the symlinked file outside the roots was uploaded")
		}
		msg := c.toolErr("ssh_upload", map[string]any{"host": srv.Alias, "local": tree, "remote": "~/x"})
		if !strings.Contains(msg, "recursive") {
			t.Errorf("folder without recursive: %s", msg)
		}
	})
}

// A client without roots may use the working directory and -allow-local.
func TestMCPTransferAllowLocal(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	allowed := t.TempDir()
	os.WriteFile(filepath.Join(allowed, "f"), []byte("x"), 0o644)
	cfg := testConfig(t, srv, t.TempDir())
	c := newMCPClientOpts(t, cfg, true)
	if msg := c.toolErr("ssh_upload", map[string]any{"host": srv.Alias, "local": filepath.Join(allowed, "f"), "remote": "~/f"}); !strings.Contains(msg, "-allow-local") {
		t.Errorf("without -allow-local: %s", msg)
	}
	cfg.AllowLocal = []string{allowed}
	c = newMCPClientOpts(t, cfg, true)
	var tr transferOut
	c.decode("ssh_upload", map[string]any{"host": srv.Alias, "local": filepath.Join(allowed, "f"), "remote": "~/f"}, &tr)
	sameFile(t, filepath.Join(allowed, "f"), filepath.Join(srv.Home, "f"))
}

// sudo: true reads and writes a root-only file through the tools; the job
// rows say sudo, and neither the content nor the password is stored.
func TestMCPFilesSudo(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{User: sshtest.TestUser})
	t.Setenv("OVRD_"+srv.Alias+"_SUDO_PASS", srv.Password)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	target := filepath.Join(dir, "root.conf")
	os.WriteFile(target, []byte("token=ROOTONLY\n"), 0o600)
	db := t.TempDir()
	c := newMCPClient(t, testConfig(t, srv, db))
	if msg := c.toolErr("ssh_read_file", map[string]any{"host": srv.Alias, "path": target}); !strings.Contains(msg, "permission denied") || !strings.Contains(msg, "sudo: true") {
		t.Errorf("without sudo: %s", msg)
	}
	var rd readFileOut
	c.decode("ssh_read_file", map[string]any{"host": srv.Alias, "path": target, "sudo": true}, &rd)
	if rd.Content != "token=ROOTONLY\n" {
		t.Fatalf("sudo read: %+v", rd)
	}
	var w writeFileOut
	c.decode("ssh_write_file", map[string]any{"host": srv.Alias, "path": target, "content": "token=NEWROOT\n", "sudo": true, "if_sha256": rd.SHA256}, &w)
	if got, _ := os.ReadFile(target); string(got) != "token=NEWROOT\n" || w.Mode != "0600" {
		t.Fatalf("sudo write: %q %+v", got, w)
	}
	j, err := c.a.eng.Get(context.Background(), w.JobID)
	if err != nil || !j.Sudo || !strings.HasSuffix(j.Command, " sudo") {
		t.Errorf("job of a sudo write: %+v %v", j, err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(filepath.Join(db, "sshjobs.db"+suffix))
		for _, s := range []string{"ROOTONLY", "NEWROOT", srv.Password} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("sshjobs.db%s holds %q", suffix, s)
			}
		}
	}
}

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

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// storedKinds lists the kinds the store holds for the client's hosts.
func storedKinds(c *mcpClient) string {
	c.t.Helper()
	var out credentialsOut
	b, _ := json.Marshal(c.call("ssh_credentials", map[string]any{"action": "list"}).StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		c.t.Fatal(err)
	}
	var kinds []string
	for _, r := range out.Credentials {
		kinds = append(kinds, r.Kinds...)
	}
	return strings.Join(kinds, ",")
}

// answerPage is an elicitation handler that types secret on the page
// (ticking "remember" as asked) and accepts.
func answerPage(t *testing.T, secret string, remember bool, asked *[]string) func(*mcp.ElicitParams) *mcp.ElicitResult {
	return func(p *mcp.ElicitParams) *mcp.ElicitResult {
		if p.Mode != "url" || p.RequestedSchema != nil {
			t.Errorf("elicitation %+v", p)
		}
		*asked = append(*asked, p.Message)
		postSecret(t, p.URL, secret, remember)
		return &mcp.ElicitResult{Action: "accept"}
	}
}

// A job's login password, asked through URL elicitation by ssh_run and the
// file tools: the call goes on with it; it is held for the destination
// (a later call, after the connection closed, is not asked again) and
// stored only when "remember" was ticked. Declined, expired and form-only
// clients get an error naming the sources that would work.
func TestURLElicitationJobLogin(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})

	t.Run("ssh_run", func(t *testing.T) {
		var asked []string
		c, calls := elicitClient(t, srv, "elicit-master", true, answerPage(t, srv.Password, false, &asked))
		v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo ran"})
		if v.Output != "ran\n" || *calls != 1 || len(asked) != 1 || !strings.Contains(asked[0], "the login password of ") {
			t.Fatalf("run: %+v, asked %q", v, asked)
		}
		// Not remembered: nothing stored. Held: after the connection is
		// closed, the next call logs in again without asking.
		if k := storedKinds(c); k != "" {
			t.Errorf("stored %q without remember", k)
		}
		c.call("ssh_close", map[string]any{"all": true})
		if v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo again"}); v.Output != "again\n" || *calls != 1 {
			t.Errorf("second run: %+v, calls %d", v, *calls)
		}
	})

	t.Run("file tool remembers", func(t *testing.T) {
		var asked []string
		c, calls := elicitClient(t, srv, "elicit-master", true, answerPage(t, srv.Password, true, &asked))
		res := c.call("ssh_list_dir", map[string]any{"host": "pw", "path": "/"})
		if res.IsError || *calls != 1 || !strings.HasPrefix(text(res), "/: ") {
			t.Fatalf("list: calls %d %q", *calls, text(res))
		}
		if k := storedKinds(c); k != "password" {
			t.Errorf("stored %q, want password", k)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		var asked []string
		c, _ := elicitClient(t, srv, "", true, answerPage(t, "wrong-"+srv.Password, false, &asked))
		res := c.call("ssh_run", map[string]any{"host": "pw", "command": "echo no"})
		if !res.IsError || !strings.Contains(text(res), "the password typed on the page did not log in") {
			t.Errorf("wrong password: %q", text(res))
		}
		assertNoSecret(t, "error", text(res), srv.Password)
	})

	t.Run("decline", func(t *testing.T) {
		c, calls := elicitClient(t, srv, "", true, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "decline"} })
		res := c.call("ssh_run", map[string]any{"host": "pw", "command": "echo no"})
		want := "the login password of " + srv.User + "@" + srv.Addr() + " was not given: the user did not open the page (decline); " +
			"to give it without being asked, set OVRD_PW_PASS in sshjobs' environment, or save it with `sshjobs secret set pw`"
		if !res.IsError || *calls != 1 || !strings.HasPrefix(text(res), want) {
			t.Errorf("decline: calls %d\n got %q\nwant %q", *calls, text(res), want)
		}
		// No job was submitted.
		if res := c.call("ssh_jobs", map[string]any{}); strings.Contains(text(res), "echo no") {
			t.Errorf("a job exists: %q", text(res))
		}
	})

	t.Run("expiry", func(t *testing.T) {
		old := elicitTTL
		elicitTTL = 300 * time.Millisecond
		t.Cleanup(func() { elicitTTL = old })
		c, _ := elicitClient(t, srv, "", true, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "accept"} })
		res := c.call("ssh_read_file", map[string]any{"host": "pw", "path": "/etc/hostname"})
		if !res.IsError || !strings.Contains(text(res), "nobody typed it within") || !strings.Contains(text(res), "sshjobs secret set pw") {
			t.Errorf("expiry: %q", text(res))
		}
	})

	t.Run("form only", func(t *testing.T) {
		c, calls := elicitClient(t, srv, "", false, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "accept"} })
		v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo no"})
		if v.State != "error" || *calls != 0 || !strings.Contains(v.Error, "OVRD_PW_PASS") || !strings.Contains(v.Error, "`sshjobs secret set pw`") {
			t.Errorf("form-only: calls %d %+v", *calls, v)
		}
	})
}

// sudo's password, asked through URL elicitation when sudo says it needs
// one and no source has it: the job runs as root with it; a wrong one is
// refused before any job; declined, the error names the sources.
func TestURLElicitationSudo(t *testing.T) {
	sshtest.Each(t, sshtest.Options{User: sshtest.TestUser}, func(t *testing.T, srv *sshtest.Server) {
		cfg := func() config {
			cfg := testConfig(t, srv, t.TempDir())
			cfg.master = "elicit-master"
			return cfg
		}
		var asked []string
		c, calls := elicitMCP(t, cfg(), true, answerPage(t, srv.Password, true, &asked))
		v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "whoami", "sudo": true})
		if v.Output != "root\n" || v.State != "succeeded" || *calls != 1 || !strings.Contains(asked[0], "the sudo password on ") {
			t.Fatalf("sudo: %+v asked %q", v, asked)
		}
		if k := storedKinds(c); k != "sudo" {
			t.Errorf("stored %q, want sudo", k)
		}
		// Without sudo nothing is asked.
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "whoami"}); v.Output != sshtest.TestUser+"\n" || *calls != 1 {
			t.Errorf("plain run: %+v calls %d", v, *calls)
		}

		c, _ = elicitMCP(t, cfg(), true, answerPage(t, "wrong-"+srv.Password, true, &asked))
		res := c.call("ssh_run", map[string]any{"host": srv.Alias, "command": "whoami", "sudo": true})
		if !res.IsError || !strings.Contains(text(res), "refused the password typed on the page") {
			t.Errorf("wrong sudo password: %q", text(res))
		}
		if k := storedKinds(c); k != "" {
			t.Errorf("a refused password was stored: %q", k)
		}

		c, calls = elicitMCP(t, cfg(), true, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "decline"} })
		res = c.call("ssh_write_file", map[string]any{"host": srv.Alias, "path": "/root/sshjobs-elicit", "content": "x", "sudo": true})
		if !res.IsError || *calls != 1 || !strings.Contains(text(res), "the sudo password on ") ||
			!strings.Contains(text(res), "_SUDO_PASS in sshjobs' environment, or save it with `sshjobs secret set "+srv.Alias+" --kind sudo`") {
			t.Errorf("decline: calls %d %q", *calls, text(res))
		}
	})
}

// An encrypted key with no passphrase anywhere: ssh_run asks for the
// passphrase on the page (before the password: keys come first), logs in
// with the key, and the job runs.
func TestURLElicitationPassphrase(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	dir := t.TempDir()
	key := sshtest.WriteFile(t, filepath.Join(dir, "id"), string(must(os.ReadFile(srv.KeyFile))))
	if out, err := exec.Command("ssh-keygen", "-q", "-p", "-P", "", "-N", "phrase-"+srv.Password, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	cfg := testConfig(t, nil, t.TempDir())
	cfg.SSHConfig = sshtest.WriteFile(t, filepath.Join(dir, "config"), fmt.Sprintf("Host enc\n  HostName %s\n  Port %d\n  User %s\n"+
		"  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile %s\n", srv.Host, srv.Port, srv.User, key, filepath.Join(dir, "known_hosts")))
	var asked []string
	c, calls := elicitMCP(t, cfg, true, answerPage(t, "phrase-"+srv.Password, false, &asked))
	v := c.job("ssh_run", map[string]any{"host": "enc", "command": "echo with key"})
	if v.Output != "with key\n" || *calls != 1 || !strings.Contains(asked[0], "the passphrase of the private key for ") {
		t.Fatalf("run: %+v asked %q", v, asked)
	}
	var out connectOut
	c.decode("ssh_connect", map[string]any{"host": "enc"}, &out)
	if out.AuthMethod != "publickey" {
		t.Errorf("logged in with %q, want publickey", out.AuthMethod)
	}
}

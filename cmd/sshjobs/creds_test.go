package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/internal/sshtest"
)

func init() {
	// Quick key derivation in this test binary (the built sshjobs binary
	// keeps DefaultParams); stored rows carry their own parameters.
	credParams = credstore.Params{Time: 1, MemoryKiB: 64, Threads: 1}
}

// passwordOnlyConfig writes an ssh_config with alias "pw" for srv that has no
// usable key and no agent, and a known_hosts file of its own (empty), so a
// login needs the password and the first connect records the host key.
func passwordOnlyConfig(t *testing.T, srv *sshtest.Server) string {
	t.Helper()
	dir := t.TempDir()
	return sshtest.WriteFile(t, filepath.Join(dir, "config"), "Host pw\n  HostName "+srv.Host+"\n  Port "+strconv.Itoa(srv.Port)+
		"\n  User "+srv.User+"\n  IdentityFile "+filepath.Join(dir, "nokey")+"\n  IdentitiesOnly yes\n  IdentityAgent none\n"+
		"  UserKnownHostsFile "+filepath.Join(dir, "known_hosts")+"\n")
}

// assertNoSecret fails if any of secrets appears in s.
func assertNoSecret(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s shows a secret: %q", where, s)
		}
	}
}

func TestConnectAndCredentialsTools(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	dir := t.TempDir()
	cfg := testConfig(t, nil, dir)
	cfg.SSHConfig = passwordOnlyConfig(t, srv)
	cfg.master = "master-Tq7"
	c := newMCPClient(t, cfg)
	dbPath := filepath.Join(dir, "sshjobs.db")

	// No password anywhere: a tool error that says what to run.
	res := c.call("ssh_connect", map[string]any{"host": "pw"})
	if !res.IsError || !strings.Contains(text(res), "sshjobs secret set pw") || !strings.Contains(text(res), "OVRD_") {
		t.Fatalf("connect without a password: isError=%v %q", res.IsError, text(res))
	}

	res = c.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true})
	var out connectOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &out) != nil {
		t.Fatalf("connect: %q", text(res))
	}
	if out.AuthMethod != "password" || !strings.HasPrefix(out.HostKeyFingerprint, "SHA256:") || out.Reused ||
		!strings.HasPrefix(out.Remote, "Linux") || len(out.Saved) != 1 || out.Saved[0] != "password" {
		t.Errorf("connect: %+v", out)
	}
	// The failed attempt before already recorded the host key (accept-new).
	if out.HostKeyStatus != "known" && out.HostKeyStatus != "trusted_now" {
		t.Errorf("host_key_status %q", out.HostKeyStatus)
	}
	assertNoSecret(t, "ssh_connect", text(res)+string(must(json.Marshal(res.StructuredContent))), srv.Password)

	res = c.call("ssh_connect", map[string]any{"host": "pw"})
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &out) != nil || !out.Reused || out.HostKeyStatus != "known" {
		t.Errorf("connect again: %q", text(res))
	}

	res = c.call("ssh_credentials", map[string]any{"action": "list"})
	var list credentialsOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &list) != nil ||
		len(list.Credentials) != 1 || list.Credentials[0].Alias != "pw" || list.Credentials[0].User != srv.User ||
		strings.Join(list.Credentials[0].Kinds, ",") != "password" || !list.Enabled {
		t.Errorf("list: %q %+v", text(res), list)
	}
	assertNoSecret(t, "ssh_credentials", text(res), srv.Password)

	// A new connection logs in from the store alone.
	c.call("ssh_close", map[string]any{"all": true})
	if v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo from-store"}); v.Output != "from-store\n" {
		t.Fatalf("run from the store: %+v", v)
	}

	res = c.call("ssh_credentials", map[string]any{"action": "delete", "host": "pw", "kind": "password"})
	if res.IsError || !strings.Contains(text(res), "deleted 1") {
		t.Errorf("delete: %q", text(res))
	}
	if res := c.call("ssh_credentials", map[string]any{"action": "delete"}); !res.IsError {
		t.Errorf("delete without host: %q", text(res))
	}
	scanFiles(t, []string{dbPath, dbPath + "-wal"}, srv.Password)
}

// Saving without a master password says how to enable the store, and the
// connection itself works.
func TestConnectSaveWithoutMaster(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	cfg := testConfig(t, nil, t.TempDir())
	cfg.SSHConfig = passwordOnlyConfig(t, srv)
	c := newMCPClient(t, cfg)
	res := c.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true})
	if res.IsError || !strings.Contains(text(res), "not saved") || !strings.Contains(text(res), "SSHJOBS_MASTER_PASSWORD") {
		t.Errorf("save without master: %q", text(res))
	}
	assertNoSecret(t, "ssh_connect", text(res), srv.Password)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func scanFiles(t *testing.T, files []string, secrets ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a secret in the clear", filepath.Base(f))
			}
		}
	}
}

// `secret set` from stdin in one process; a login from the store in another;
// list, passwd and rm; nothing in the clear in the database.
func TestSecretCLI(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	bin := buildBinary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "sshjobs.db")
	flags := []string{"-db", db, "-ssh-config", passwordOnlyConfig(t, srv)}
	sh := func(stdin, master string, args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "SSHJOBS_MASTER_PASSWORD="+master, "MCP_SSH_MASTER_PASSWORD=")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	// No master password: the error says how to give one.
	if _, errOut, err := sh(srv.Password+"\n", "", append(append([]string{"secret", "set"}, flags...), "pw")...); err == nil ||
		!strings.Contains(errOut, "SSHJOBS_MASTER_PASSWORD") {
		t.Fatalf("set without master: %v %q", err, errOut)
	}
	out, errOut, err := sh(srv.Password+"\n", "cli-master-1", append(append([]string{"secret", "set"}, flags...), "pw", "--kind", "password")...)
	if err != nil || !strings.Contains(out, "saved password for "+srv.User+"@") {
		t.Fatalf("set: %v %q %q", err, out, errOut)
	}
	assertNoSecret(t, "secret set", out+errOut, srv.Password)
	if out, errOut, err := sh("", "cli-master-1", append(append([]string{"run"}, flags...), "pw", "echo", "ok")...); err != nil || out != "ok\n" {
		t.Fatalf("run with the stored password: %v %q %q", err, out, errOut)
	}
	if out, _, err := sh("", "", append([]string{"secret", "list"}, flags...)...); err != nil || !strings.Contains(out, "pw") || !strings.Contains(out, "password") {
		t.Errorf("list: %v %q", err, out)
	}
	if out, errOut, err := sh("cli-master-2\n", "cli-master-1", append([]string{"secret", "passwd"}, flags...)...); err != nil || !strings.Contains(out, "changed") {
		t.Fatalf("passwd: %v %q %q", err, out, errOut)
	}
	if _, errOut, err := sh("", "cli-master-1", append(append([]string{"run"}, flags...), "pw", "echo", "ok")...); err == nil ||
		!strings.Contains(errOut, "wrong master password") {
		t.Errorf("run with the old master password: %v %q", err, errOut)
	}
	if out, errOut, err := sh("", "cli-master-2", append(append([]string{"run"}, flags...), "pw", "echo", "ok")...); err != nil || out != "ok\n" {
		t.Fatalf("run with the new master password: %v %q %q", err, out, errOut)
	}
	if out, _, err := sh("", "", append(append([]string{"secret", "rm"}, flags...), "pw", "--kind", "password")...); err != nil || !strings.Contains(out, "deleted 1") {
		t.Errorf("rm: %v %q", err, out)
	}
	scanFiles(t, []string{db, db + "-wal"}, srv.Password, "cli-master-1", "cli-master-2")
}

// A wrong master password fails only what needs a stored secret, with a clear
// error; the server goes on answering everything else.
func TestWrongMasterPasswordServerGoesOn(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	dir := t.TempDir()
	both := must(os.ReadFile(passwordOnlyConfig(t, srv)))
	both = append(both, must(os.ReadFile(srv.SSHConfig))...)
	sshCfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), string(both))

	cfg := testConfig(t, nil, dir)
	cfg.SSHConfig, cfg.master = sshCfg, "right-master"
	c := newMCPClient(t, cfg)
	if res := c.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true}); res.IsError {
		t.Fatalf("connect: %q", text(res))
	}
	c.a.Close()

	cfg.master = "wrong-master"
	c = newMCPClient(t, cfg)
	v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo no"})
	if v.State != "error" || !strings.Contains(v.Error, "wrong master password") {
		t.Errorf("run with a wrong master password: %s %q", v.State, v.Error)
	}
	assertNoSecret(t, "error", v.Error, srv.Password, "right-master", "wrong-master")
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo key-login"}); v.Output != "key-login\n" {
		t.Errorf("key login with a wrong master password: %+v", v)
	}
	if res := c.call("ssh_credentials", map[string]any{"action": "list"}); res.IsError || !strings.Contains(text(res), "password") {
		t.Errorf("list with a wrong master password: %q", text(res))
	}
}

// ssh_connect reads private_key_path only inside the folders the file tools
// may read (the client's roots, else the working directory and
// -allow-local): the model cannot make sshjobs read any file of this
// machine as a key (review finding).
func TestConnectKeyPathConfined(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	keyDir := t.TempDir()
	key := sshtest.WriteFile(t, filepath.Join(keyDir, "id"), string(must(os.ReadFile(srv.KeyFile))))

	cfg := testConfig(t, nil, t.TempDir())
	cfg.SSHConfig = passwordOnlyConfig(t, srv)
	c := newMCPClient(t, cfg)
	res := c.call("ssh_connect", map[string]any{"host": "pw", "private_key_path": key})
	if !res.IsError || !strings.Contains(text(res), "outside the allowed folders") || !strings.Contains(text(res), "-allow-local") {
		t.Errorf("a key outside the roots: %q", text(res))
	}

	cfg.AllowLocal = []string{keyDir}
	c = newMCPClient(t, cfg)
	var out connectOut
	c.decode("ssh_connect", map[string]any{"host": "pw", "private_key_path": key}, &out)
	if out.AuthMethod != "publickey" {
		t.Errorf("a key inside -allow-local: %+v", out)
	}
}

package sshdial

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// The programs sshjobs starts on the user's behalf (a ProxyCommand, `ssh -G`
// and the Match exec commands it runs) see the environment without secrets:
// each dumps its environment to a file, which must hold no secret variable
// (neither name nor value) but still the ordinary ones.
func TestProxyChildrenEnvWithoutSecrets(t *testing.T) {
	sshtest.NoAgent(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client: the ssh -G path cannot be tested")
	}
	secrets := map[string]string{
		"OVRD_VIACMD_PASS":        "pw-login-1",
		"OVRD_VIACMD_SUDO_PASS":   "pw-sudo-2",
		"OVRD_VIACMD_ENABLE_PASS": "pw-enable-3",
		"OVRD_VIACMD_KEY_PASS":    "pw-keypass-4",
		"OVRD_OTHER_PASS":         "pw-other-5",
		"OVRD_VIACMD_KEY":         "/secret/key/path-6",
		"ROUTER_SUDO_PASS":        "pw-sudo-7",
		"ROUTER_ENABLE_PASS":      "pw-enable-8",
		"SSHJOBS_MASTER_PASSWORD": "pw-master-9",
		"MCP_SSH_MASTER_PASSWORD": "pw-master-10",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("SSHJOBS_TEST_KEEP", "kept")

	s := sshtest.StartOpenSSH(t, sshtest.Options{})
	dir := t.TempDir()
	kh, cfg := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "config")
	proxyDump, matchDump := filepath.Join(dir, "proxy.env"), filepath.Join(dir, "match.env")
	sshtest.AppendKnownHosts(t, kh, s)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// `ssh -G` runs Match exec commands while it resolves.
	sshtest.WriteFile(t, cfg, "Match exec \"env > "+matchDump+"\"\n")
	sshtest.WriteConfig(t, cfg, "viacmd", s, kh,
		`ProxyCommand sh -c 'env > `+proxyDump+`; exec "$0" -test.run=TestHelperNC -- "$1" "$2"' `+exe+` %h %p`)
	t.Setenv("SSHJOBS_TEST_NC", "1")

	r := &sshconfig.Resolver{ConfigFile: cfg}
	h, err := r.Resolve(context.Background(), "viacmd")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := (&Dialer{Resolver: r, Logger: dialLogger(t)}).Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if out := runCmd(t, c, "echo piped"); out != "piped" {
		t.Errorf("echo: %q", out)
	}
	c.Close()

	for name, path := range map[string]string{"ProxyCommand": proxyDump, "ssh -G (Match exec)": matchDump} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		env := string(b)
		for k, v := range secrets {
			if strings.Contains(env, k+"=") || strings.Contains(env, v) {
				t.Errorf("%s sees %s", name, k)
			}
		}
		for _, keep := range []string{"SSHJOBS_TEST_KEEP=kept", "PATH=", "HOME="} {
			if !strings.Contains(env, keep) {
				t.Errorf("%s lacks %s", name, keep)
			}
		}
	}
}

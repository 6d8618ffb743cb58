package sessions

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// The programs sshjobs starts on the user's behalf (a ProxyCommand, `ssh -G`
// and the Match exec commands it runs) see the environment without secrets:
// each dumps its environment to a file, which must hold no secret variable
// (neither name nor value) but still the ordinary ones.
func TestProxyChildrenEnvWithoutSecrets(t *testing.T) {
	noAgent(t)
	if _, ok := (&Resolver{}).openSSH(); !ok {
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
	appendKnownHosts(t, kh, s)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// `ssh -G` runs Match exec commands while it resolves.
	writeFile(t, cfg, "Match exec \"env > "+matchDump+"\"\n")
	writeConfigFor(t, cfg, "viacmd", s, kh,
		`ProxyCommand sh -c 'env > `+proxyDump+`; exec "$0" -test.run=TestHelperNC -- "$1" "$2"' `+exe+` %h %p`)
	t.Setenv("SSHJOBS_TEST_NC", "1")

	r := &Resolver{ConfigFile: cfg}
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

func TestProxyEnvSecretNames(t *testing.T) {
	for name, secret := range map[string]bool{
		"OVRD_WEB_1_PASS": true, "OVRD_WEB_1_KEY_PASS": true, "OVRD_WEB_1_SUDO_PASS": true,
		"OVRD_WEB_1_ENABLE_PASS": true, "OVRD_WEB_1_KEY": true, "ovrd_web_pass": true,
		"DB_SUDO_PASS": true, "SW1_ENABLE_PASS": true,
		"SSHJOBS_MASTER_PASSWORD": true, "MCP_SSH_MASTER_PASSWORD": true,
		"OVRD_WEB_1_HOST": false, "OVRD_WEB_1_PORT": false, "OVRD_WEB_1_USER": false,
		"PATH": false, "HOME": false, "SSH_AUTH_SOCK": false, "PASS": false, "KEY": false,
	} {
		if got := isSecretEnv(name); got != secret {
			t.Errorf("isSecretEnv(%q) = %v, want %v", name, got, secret)
		}
	}
	got := withoutSecrets([]string{"A=1", "OVRD_X_PASS=p", "=C:=C:\\", "B", "OVRD_X_KEY=/k", "OVRD_X_HOST=h"})
	if want := "A=1|=C:=C:\\|B|OVRD_X_HOST=h"; strings.Join(got, "|") != want {
		t.Errorf("withoutSecrets = %q, want %q", strings.Join(got, "|"), want)
	}
}

package sshconfig

import (
	"strings"
	"testing"
)

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
	got := WithoutSecrets([]string{"A=1", "OVRD_X_PASS=p", "=C:=C:\\", "B", "OVRD_X_KEY=/k", "OVRD_X_HOST=h"})
	if want := "A=1|=C:=C:\\|B|OVRD_X_HOST=h"; strings.Join(got, "|") != want {
		t.Errorf("WithoutSecrets = %q, want %q", strings.Join(got, "|"), want)
	}
}
